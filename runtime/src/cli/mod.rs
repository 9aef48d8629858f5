//! The command line: one module per subcommand, each parsing its flags, calling the library and
//! printing. [`main`] is the whole of the `alexrt` binary (and of the end-to-end tests' copy of
//! it, `alexrt-under-test`).

pub mod bench;
pub mod check_all_reduce;
pub mod check_nvrtc;
pub mod data;
pub mod eval;
pub mod pack;
pub mod train;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::device::{self, Device, DEVICE_HELP};
use crate::distributed::{self, Collective};
use crate::RunError;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The parser of every count flag (`--epochs`, `--workers`, `--images`, ...): a whole number, 1
/// or more. Clap names the flag and the value before the message.
pub(crate) fn one_or_more(text: &str) -> Result<NonZeroUsize, String> {
    let n = text.parse::<usize>().map_err(|e| format!("{e}; give a whole number, 1 or more"))?;
    NonZeroUsize::new(n).ok_or_else(|| "a count of 0 leaves nothing to do; give 1 or more".to_string())
}

#[derive(Parser)]
#[command(name = "alexrt", version, about = "Runs plans compiled by alexc")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a plan's network, on an ImageNet-layout folder (--data) or, without one, on the
    /// built-in synthetic dataset (generated, not downloaded).
    Train(train::TrainArgs),
    /// Top-1 and top-5 accuracy on DIR/val: centre crop, and the paper's ten crops.
    Eval(eval::EvalArgs),
    /// The top-5 classes of each image.
    Infer(eval::InferArgs),
    /// Pack an ImageNet-layout folder into WebDataset-layout tar shards with an index, images
    /// resized once to the short side; train, eval, stats and bench-data read them (--data).
    Pack(pack::PackArgs),
    /// Compute the training set's mean and RGB eigen-decomposition (for `Dataset` mean and PCA
    /// lighting) and store them in DIR/alexrt-stats.json.
    Stats(data::StatsArgs),
    /// Print what a plan holds: its step, schedule and memory plan.
    Inspect {
        /// A plan from `alexc compile`.
        plan: PathBuf,
    },
    /// Time a plan's step (and, for a training plan, its forward pass alone) on a synthetic batch.
    Bench(bench::BenchArgs),
    /// Time decoding and augmentation of DIR/train images as training prepares them.
    BenchData(data::BenchDataArgs),
    /// Check the device's LRN and pooling kernels against the reference CPU kernels, and time
    /// them at conv1's shape next to the device's copy bandwidth (the GPU check script uses it).
    CheckKernels(bench::CheckKernelsArgs),
    /// Check the gradient all-reduce on device memory (NCCL on CUDA) against the host's mean and
    /// time it next to the host path (the GPU check script uses it; under mpirun, one GPU a rank).
    CheckAllReduce(check_all_reduce::CheckAllReduceArgs),
    /// Compile every CubeCL kernel the runtime launches on CUDA with NVRTC for sm_80 and sm_90a
    /// (no GPU needed) and print registers, spills and shared memory; fails on a compile error,
    /// a spill or a limit passed (`cuda` feature; see docs/gpu-kernels-nvrtc.md).
    CheckNvrtc(check_nvrtc::CheckNvrtcArgs),
}

/// Runs `f` in `world`: in one process, as it is; as one rank of a data-parallel run (under
/// `mpirun`), with its share of the machine's cores, and so that an error on any rank ends every
/// rank with that rank's message (rather than leave the others waiting in a collective).
pub fn as_rank(
    world: std::sync::Arc<dyn Collective>,
    f: impl FnOnce(std::sync::Arc<dyn Collective>) -> Result<(), RunError>,
) -> Result<(), RunError> {
    if world.size() == 1 {
        return f(world);
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = distributed::threads_per_rank(&*world);
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    let rank = world.rank();
    if let Err(e) = f(std::sync::Arc::clone(&world)) {
        distributed::say_from_rank(rank, &format!("{e}\nending every rank of the run"));
        world.abort(if matches!(e, RunError::Internal(_)) { 1 } else { 2 });
    }
    Ok(())
}

/// `--device`, shared by the subcommands that run a plan.
#[derive(clap::Args, Clone)]
pub struct DeviceArg {
    #[arg(long, default_value = "auto", help = DEVICE_HELP)]
    pub device: String,
}

impl DeviceArg {
    /// The chosen device, said on stderr.
    pub fn choose(&self) -> Result<Device, RunError> {
        let (device, note) = device::choose(&self.device)?;
        eprintln!("{note}");
        Ok(device)
    }

    /// The chosen devices (several for a placed plan: `cpu,cpu`), said on stderr.
    pub fn choose_all(&self) -> Result<device::Devices, RunError> {
        let (devices, note) = device::choose_all(&self.device)?;
        eprintln!("{note}");
        Ok(devices)
    }
}

/// Runs `$($run)::+::<Backend>($args, device)` on the backend that `$device` (a [`DeviceArg`]) chose.
macro_rules! on_device {
    ($device:expr, $($run:ident)::+, $args:expr) => {
        match $device.choose() {
            Ok(crate::device::Device::Cpu) => $($run)::+::<crate::Cpu>($args, Default::default()),
            Ok(crate::device::Device::Wgpu) => {
                $($run)::+::<crate::Wgpu>($args, burn::backend::wgpu::WgpuDevice::DefaultDevice)
            }
            #[cfg(feature = "cuda")]
            Ok(crate::device::Device::Cuda(i)) => $($run)::+::<crate::Cuda>($args, cubecl::cuda::CudaDevice::new(i)),
            #[cfg(not(feature = "cuda"))]
            Ok(crate::device::Device::Cuda(_)) => {
                Err(crate::RunError::Internal("device::choose gave CUDA to a build without it".into()))
            }
            Err(e) => Err(e),
        }
    };
}

/// Runs `$($run)::+::<Backend>($args, devices)` with the devices that `$device` (a [`DeviceArg`],
/// possibly a comma-separated list for a placed plan) names.
macro_rules! on_devices {
    ($device:expr, $($run:ident)::+, $args:expr) => {
        match $device.choose_all() {
            Ok(crate::device::Devices::Cpu(n)) => $($run)::+::<crate::Cpu>($args, vec![Default::default(); n]),
            Ok(crate::device::Devices::Wgpu(n)) => {
                use burn::backend::wgpu::WgpuDevice;
                let devices = (0..n).map(|i| if i == 0 { WgpuDevice::DefaultDevice } else { WgpuDevice::Cpu });
                $($run)::+::<crate::Wgpu>($args, devices.collect())
            }
            #[cfg(feature = "cuda")]
            Ok(crate::device::Devices::Cuda(ids)) => {
                $($run)::+::<crate::Cuda>($args, ids.into_iter().map(cubecl::cuda::CudaDevice::new).collect())
            }
            #[cfg(not(feature = "cuda"))]
            Ok(crate::device::Devices::Cuda(_)) => {
                Err(crate::RunError::Internal("device::choose_all gave CUDA to a build without it".into()))
            }
            Err(e) => Err(e),
        }
    };
}

/// A progress bar on a terminal (stderr, four redraws a second).
pub fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4));
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

pub fn is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// The `alexrt` program: parses the command line, runs the subcommand, prints its error (exit
/// status 2 for bad input of any kind, 1 for an internal error).
pub fn main() -> ExitCode {
    crate::tune_allocator();
    let result = match Cli::parse().command {
        Command::Inspect { plan } => crate::inspect(&plan).map(|t| crate::say(&t)).map_err(RunError::from),
        Command::Train(args) => on_devices!(args.device.clone(), train::run, args),
        Command::Eval(args) => on_device!(args.device.clone(), eval::run_eval, args),
        Command::Infer(args) => on_device!(args.device.clone(), eval::run_infer, args),
        Command::Stats(args) => data::run_stats(args),
        Command::Pack(args) => pack::run(args),
        Command::Bench(args) => on_devices!(args.device.clone(), bench::run_bench, args),
        Command::CheckKernels(args) => on_device!(args.device.clone(), bench::run_check_kernels, args),
        Command::CheckAllReduce(args) => on_device!(args.device.clone(), check_all_reduce::run, args),
        Command::CheckNvrtc(args) => check_nvrtc::run(args),
        Command::BenchData(args) => data::run_bench_data(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(match e {
                RunError::Internal(_) => 1,
                _ => 2,
            })
        }
    }
}
