//! The `alexc` binary's flag types and parsers (a module of main.rs, not of the library): clap
//! stays in the command line, main.rs and cli/.

use alexc::catalog::ConvAlgo;
use alexc::ir::Mode;
use alexc::passes::{ConvAlgoChoice, PassName};
use clap::ValueEnum;

#[derive(Clone, Copy, Debug)]
pub enum BatchSize {
    Fixed(usize),
    Max,
}

#[derive(Clone, Copy, Debug)]
pub enum DumpChoice {
    All,
    One(PassName),
}

/// `--mode`: the library's [`Mode`] as the command line spells it (clap stays in the binary).
#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Train,
    Infer,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Train => Mode::Train,
            ModeArg::Infer => Mode::Infer,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Emit {
    Plan,
    Dot,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// `--batch-size` of compile: a positive number or `max`.
pub fn parse_batch(s: &str) -> Result<BatchSize, String> {
    if s == "max" {
        return Ok(BatchSize::Max);
    }
    parse_fixed_batch(s).map(BatchSize::Fixed).map_err(|e| format!("{e} or `max`"))
}

/// `--batch-size` of summary: a positive number.
pub fn parse_fixed_batch(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) | Err(_) => Err(format!("`{s}` is not a batch size: give a positive number")),
        Ok(n) => Ok(n),
    }
}

pub fn parse_pass(s: &str) -> Result<DumpChoice, String> {
    if s == "all" {
        return Ok(DumpChoice::All);
    }
    PassName::all().into_iter().find(|p| p.as_str() == s).map(DumpChoice::One).ok_or_else(|| {
        let names: Vec<&str> = PassName::all().iter().map(|p| p.as_str()).collect();
        format!("unknown pass `{s}`; the passes are: {}, all", names.join(", "))
    })
}

pub fn parse_conv_algo(s: &str) -> Result<ConvAlgoChoice, String> {
    if s == "auto" {
        return Ok(ConvAlgoChoice::ByShape);
    }
    ConvAlgo::from_name(s).map(ConvAlgoChoice::Force).ok_or_else(|| {
        let names: Vec<&str> = ConvAlgo::ALL.iter().map(|a| a.name()).collect();
        format!("unknown convolution algorithm `{s}`; use auto, {}", names.join(", "))
    })
}

pub fn parse_precision(s: &str) -> Result<alexc::ir::Precision, String> {
    alexc::ir::Precision::from_name(s).ok_or_else(|| format!("unknown precision `{s}`; use f32, bf16 or f16"))
}
