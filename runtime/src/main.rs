//! `alexrt`: the runtime's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "alexrt", version, about = "Runs plans compiled by alexc")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what a plan holds: its step, schedule and memory plan.
    Inspect { plan: PathBuf },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Inspect { plan } => match alexrt::inspect(&plan) {
            Ok(text) => {
                alexrt::say(&text);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
    }
}
