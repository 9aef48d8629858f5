//! `alexrt`: the runtime's command line. Each subcommand lives in [`cli`]; the work in the library.

#[macro_use]
mod cli;

use std::process::ExitCode;

use alexrt::RunError;
use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    alexrt::tune_allocator();
    let result = match Cli::parse().command {
        Command::Inspect { plan } => alexrt::inspect(&plan).map(|t| alexrt::say(&t)).map_err(RunError::from),
        Command::Train(args) => on_devices!(args.device.clone(), cli::train::run, args),
        Command::Eval(args) => on_device!(args.device.clone(), cli::eval::run_eval, args),
        Command::Infer(args) => on_device!(args.device.clone(), cli::eval::run_infer, args),
        Command::Stats(args) => cli::data::run_stats(args),
        Command::Bench(args) => on_device!(args.device.clone(), cli::bench::run_bench, args),
        Command::CheckKernels(args) => on_device!(args.device.clone(), cli::bench::run_check_kernels, args),
        Command::CheckAllReduce(args) => {
            on_device!(args.device.clone(), cli::check_all_reduce::run, args)
        }
        Command::BenchData(args) => cli::data::run_bench_data(args),
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
