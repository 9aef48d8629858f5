//! `alexrt check-all-reduce`: the gradient all-reduce on device memory (NCCL on CUDA) checked
//! against the host's mean and timed next to the host path, for the GPU script. Runs as one
//! process, or under `mpirun` as several (one GPU each).

use crate::distributed::check::{check_all_reduce, ALEXNET_FC_BUCKET};
use crate::kernels::KernelBackend;
use crate::RunError;

use super::DeviceArg;

#[derive(clap::Args)]
pub struct CheckAllReduceArgs {
    #[command(flatten)]
    pub device: DeviceArg,
    /// Timed repetitions of each path.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

pub fn run<B: KernelBackend>(args: CheckAllReduceArgs, device: B::Device) -> Result<(), RunError> {
    let world = crate::distributed::connect()?;
    let report = check_all_reduce::<B>(&device, &*world, &ALEXNET_FC_BUCKET, args.repeats)?;
    if world.rank() == 0 {
        crate::say(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()));
    }
    if report.max_abs_error > report.tolerance {
        return Err(RunError::Internal(format!(
            "the device's all-reduce means differ from the host's by up to {:e} (tolerance {:e})",
            report.max_abs_error, report.tolerance
        )));
    }
    Ok(())
}
