//! A training run as `alexrt train` starts it: the plan checked, the run folder chosen, weights or
//! a checkpoint restored, the datasets opened and matched against the checkpoint, and the
//! training configuration.

use std::path::PathBuf;
use std::sync::Arc;

use alexir::plan::Plan;

use crate::checkpoint::{self, Checkpoint};
use crate::data::{sources, DataSource, Datasets, Loader};
use crate::distributed::{sync, threads_per_rank, Collective, Single};
use crate::error::RunError;
use crate::exec::Executor;
use crate::kernels::KernelBackend;
use crate::progress::Progress;
use crate::run_dir::RunDir;
use crate::train::TrainConfig;
use crate::weights;

/// What the user asked of a training run.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// The run folder (default: [`RunDir::choose`]'s).
    pub out: Option<PathBuf>,
    /// Continue from the run folder's checkpoint.
    pub resume: bool,
    /// Start from these weights.
    pub weights: Option<PathBuf>,
    pub data: DataSource,
    /// Epochs in all (default: the graph file's).
    pub epochs: Option<usize>,
    pub max_steps_per_epoch: Option<usize>,
    pub checkpoint_every: Option<usize>,
    /// Decoding threads (default: one per core).
    pub workers: Option<usize>,
}

/// A prepared run: everything [`crate::train::train`] needs, and what to tell the user.
pub struct Session<B: KernelBackend> {
    pub exec: Executor<B>,
    pub dir: RunDir,
    pub progress: Progress,
    pub datasets: Datasets,
    pub config: TrainConfig,
    /// Lines for the user: what the run's bits can be trusted to repeat, what was restored from
    /// where, what the data holds.
    pub notes: Vec<String>,
}

impl<B: KernelBackend> Session<B> {
    /// Prepares a run of `plan` on `device`.
    pub fn prepare(
        plan: &Plan,
        plan_path: &str,
        req: &TrainRequest,
        device: B::Device,
    ) -> Result<Self, RunError> {
        Self::prepare_in(plan, plan_path, req, vec![device], Arc::new(Single))
    }

    /// Prepares this process's replica of a data-parallel run over `world`, on `devices` (one per
    /// device the plan is placed on): rank 0 chooses the run folder and restores weights or a
    /// checkpoint, and every rank starts from its weights, optimizer state and progress. Only
    /// rank 0 writes checkpoints.
    pub fn prepare_in(
        plan: &Plan,
        plan_path: &str,
        req: &TrainRequest,
        devices: Vec<B::Device>,
        world: Arc<dyn Collective>,
    ) -> Result<Self, RunError> {
        let rank0 = world.rank() == 0;
        if plan.graph.loss.is_none() {
            return Err(RunError::Input(format!(
                "{plan_path}: an inference plan cannot be trained; compile with `--mode train`"
            )));
        }
        if req.resume && req.weights.is_some() {
            return Err(RunError::Input(
                "--resume continues from the checkpoint's weights; leave out --weights".into(),
            ));
        }
        let batch_size = plan.memory.batch_size;
        let mut exec = Executor::<B>::new_on(plan, devices)?;
        exec.join(Arc::clone(&world))?;
        let dir = if rank0 {
            let dir = RunDir::choose(req.out.as_deref(), &plan.graph.name, req.resume)?;
            sync::broadcast_text(&dir.path().to_string_lossy(), &*world);
            dir
        } else {
            RunDir::chosen_by_rank0(sync::broadcast_text("", &*world).into())
        };
        let mut notes = vec![B::reproducibility().to_string()];
        let mut progress = Progress::start(&plan.graph.spec);
        let mut resumed: Option<Checkpoint> = None;
        if req.resume && rank0 {
            let r = checkpoint::resume(&mut exec, dir.path())?;
            if let Some(why) = &r.fell_back {
                notes.push(format!(
                    "warning: {why}\n  falling back to the previous checkpoint, {}",
                    r.path.display()
                ));
            }
            notes.push(format!(
                "resuming from {} at epoch {}, step {} ({} steps done)",
                r.path.display(),
                r.progress.epoch + 1,
                r.progress.step_in_epoch,
                r.meta.steps_done
            ));
            progress = r.progress;
            if progress.schedule.adopt(&plan.graph.spec.optimizer, &plan.graph.spec.schedule) {
                notes.push(format!(
                    "note: this plan's learning rate or schedule differs from the checkpoint's; continuing with the plan's (rate {:.5} at epoch {})",
                    progress.schedule.lr(progress.epoch),
                    progress.epoch + 1
                ));
            }
            resumed = Some(r.meta);
        } else if let Some(w) = req.weights.as_ref().filter(|_| rank0) {
            weights::load(&mut exec, w)?;
            notes.push(format!("loaded weights from {}", w.display()));
        }
        exec.broadcast_state()?;
        sync::broadcast_progress(&mut progress, &*world)?;
        let datasets = sources::open(plan, &req.data)?;
        notes.extend(datasets.notes.iter().cloned());
        if let Some(meta) = &resumed {
            meta.check_same_data(&*datasets.train, batch_size * world.size())?;
        }
        let mut loader = Loader { workers: threads_per_rank(&*world), ..Loader::default() };
        if let Some(w) = req.workers {
            loader.workers = w.max(1);
        }
        let config = TrainConfig {
            epochs: req.epochs.unwrap_or(plan.graph.spec.training.epochs),
            max_steps_per_epoch: req.max_steps_per_epoch,
            batch_size,
            loader,
            checkpoint_dir: rank0.then(|| dir.path().to_path_buf()),
            checkpoint_every: req.checkpoint_every,
            stats: datasets.stats.clone(),
        };
        if rank0 {
            dir.create()?;
        }
        Ok(Session { exec, dir, progress, datasets, config, notes })
    }
}
