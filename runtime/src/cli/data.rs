//! `alexrt stats` (a training set's mean and RGB eigen-decomposition) and `alexrt bench-data`
//! (decoding and augmentation throughput).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use crate::data::augment::Pipeline;
use crate::data::stats;
use crate::data::{open_split, sources, Loader};
use crate::RunError;
use alexir::plan::Plan;

use super::bar;

#[derive(clap::Args)]
pub struct StatsArgs {
    /// The dataset folder (or shards from `alexrt pack`); DIR/train is read.
    #[arg(long)]
    data: PathBuf,
    /// The graph whose preprocessing (resize, centre crop) the statistics follow.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Use at most this many images, spread over the set.
    #[arg(long, value_parser = super::one_or_more)]
    max_images: Option<NonZeroUsize>,
}

#[derive(clap::Args)]
pub struct BenchDataArgs {
    /// The dataset folder (or shards from `alexrt pack`); DIR/train is read.
    #[arg(long)]
    data: PathBuf,
    /// The plan whose preprocessing and input size to use.
    #[arg(long)]
    plan: PathBuf,
    /// Images to prepare.
    #[arg(long, default_value = "512", value_parser = super::one_or_more)]
    images: NonZeroUsize,
    /// Decoding threads.
    #[arg(long, default_value = "1", value_parser = super::one_or_more)]
    workers: NonZeroUsize,
    #[arg(long)]
    json: bool,
}

pub fn run_stats(args: StatsArgs) -> Result<(), RunError> {
    let pipeline = match &args.plan {
        Some(p) => {
            let plan = Plan::read(p)?;
            Pipeline::for_statistics(plan.graph.spec.data.as_ref(), sources::input_shape(&plan)?)
        }
        None => Pipeline::from_spec(None, [3, 256, 256], None),
    }
    .map_err(RunError::Input)?;
    let folder = open_split(&args.data, "train", None, pipeline).map_err(RunError::Input)?;
    let n = args.max_images.map_or(folder.len(), |m| m.get().min(folder.len()));
    let pb = bar(n as u64, "statistics [{bar:30}] {pos}/{len} images, eta {eta}");
    let s = stats::compute(&*folder, args.max_images.map(|m| m.get()), &|done| pb.set_position(done as u64));
    pb.finish_and_clear();
    if s.images == 0 {
        return Err(RunError::Input(format!(
            "{}: no readable images, so no statistics were written",
            args.data.join("train").display()
        )));
    }
    let path = stats::stats_path(&args.data);
    let text = serde_json::to_string_pretty(&s).map_err(|e| RunError::Internal(e.to_string()))?;
    alexir::plan::write_atomically(&path, text.as_bytes())
        .map_err(|source| RunError::Io { path: path.display().to_string(), source })?;
    crate::say(&format!(
        "{} images ({} unreadable, skipped): mean RGB {:.2} {:.2} {:.2}; eigenvalues {:.4} {:.4} {:.4}\nwrote {}\n",
        s.images,
        s.skipped,
        s.mean[0],
        s.mean[1],
        s.mean[2],
        s.eigenvalues[0],
        s.eigenvalues[1],
        s.eigenvalues[2],
        path.display()
    ));
    Ok(())
}

pub fn run_bench_data(args: BenchDataArgs) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let (pipeline, _) = sources::pipeline(&plan, &args.data, None)?;
    let folder = open_split(&args.data, "train", None, pipeline).map_err(RunError::Input)?;
    let n = args.images.get().min(folder.len());
    let batches: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(32).map(|c| c.to_vec()).collect();
    let loader = Loader { workers: args.workers.get(), prefetch: 4 };
    // One untimed pass warms the file cache, then the timed one.
    for timed in [false, true] {
        let started = Instant::now();
        let (mut done, mut skipped) = (0, 0);
        loader.run(&*folder, &batches, Some(1), |l| {
            done += l.batch.len();
            for (_, error) in &l.failed {
                skipped += 1;
                // The untimed pass reads the same images: said once.
                if !timed && skipped <= 5 {
                    eprintln!("skipped an unreadable image: {error}");
                }
            }
            Ok::<(), RunError>(())
        })?;
        if !timed {
            continue;
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = done as f64 / secs;
        let per_core = rate / loader.workers as f64;
        crate::say(&if args.json {
            format!(
                "{}\n",
                serde_json::json!({"images": done, "unreadable": skipped, "seconds": secs,
                    "workers": loader.workers, "images_per_second": rate, "per_core": per_core})
            )
        } else {
            format!(
                "{} decoded and augmented in {secs:.2}s with {}: {rate:.0} images/s, {per_core:.0} per core{}\n",
                alexir::units::plural(done, "image", "images"),
                alexir::units::plural(loader.workers, "worker", "workers"),
                if skipped > 0 {
                    format!(" ({} skipped)", alexir::units::plural(skipped, "unreadable image", "unreadable images"))
                } else {
                    String::new()
                }
            )
        });
    }
    Ok(())
}
