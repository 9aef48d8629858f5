//! A test hook for how a data-parallel job ends when one rank fails: `ALEXRT_FAULT=RANK:STEP:KIND`
//! makes rank RANK fail right before the training step STEP (1-based, counted from the start of
//! training, across epochs and resumes) in the way KIND says:
//!
//! - `error`: the rank returns an error, as a bad input would; it ends every rank (MPI_Abort);
//! - `exit`: the process dies at once (exit status 9), as a crash would; `mpirun` ends the job;
//! - `hang`: the rank stops (sleeps), as a stuck process would; the other ranks' collective
//!   timeout (`ALEXRT_COLLECTIVE_TIMEOUT`) ends the job.
//!
//! The training loop reads the variable once, when it starts ([`Fault::from_env`]): unset, there
//! is no hook to call, and the steps run as they would without it. `tests/e2e/data_parallel_failures.rs`
//! and `tests/e2e/reproducible.rs` (a run killed at a chosen step) use it.

use crate::error::RunError;

/// The environment variable of the hook.
pub const VAR: &str = "ALEXRT_FAULT";

/// How the rank fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Error,
    Exit,
    Hang,
}

/// The failure `ALEXRT_FAULT` asks for: rank `rank` fails right before step `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    rank: usize,
    step: u64,
    kind: Kind,
    /// The variable's value, for the messages.
    spec: String,
}

impl Fault {
    /// The failure `ALEXRT_FAULT` asks for; `None` when it is unset (a normal run). A value that
    /// does not parse is an error, before any step runs.
    pub fn from_env() -> Result<Option<Fault>, RunError> {
        std::env::var(VAR).ok().map(|spec| parse(&spec)).transpose()
    }

    /// Fails as asked if this is rank `rank` about to run step `step` (1-based, counted from the
    /// start of training, across epochs and resumes); does nothing otherwise.
    pub fn before_step(&self, rank: usize, step: u64) -> Result<(), RunError> {
        if (self.rank, self.step) != (rank, step) {
            return Ok(());
        }
        let spec = &self.spec;
        match self.kind {
            Kind::Error => Err(RunError::Input(format!(
                "{VAR}={spec}: rank {rank} fails before step {step} (test hook)"
            ))),
            Kind::Exit => {
                super::say_whole(&format!("{VAR}={spec}: rank {rank} dies before step {step} (test hook)"));
                std::process::exit(9)
            }
            Kind::Hang => {
                super::say_whole(&format!("{VAR}={spec}: rank {rank} stops before step {step} (test hook)"));
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
        }
    }
}

fn parse(spec: &str) -> Result<Fault, RunError> {
    let bad = || {
        RunError::Input(format!(
            "{VAR}={spec}: expected RANK:STEP:KIND with KIND error, exit or hang (for example 1:2:exit); unset it to train normally"
        ))
    };
    let mut parts = spec.split(':');
    let rank = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
    let step = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let kind = match parts.next() {
        Some("error") => Kind::Error,
        Some("exit") => Kind::Exit,
        Some("hang") => Kind::Hang,
        _ => return Err(bad()),
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Fault { rank, step, kind, spec: spec.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_spec_names_a_rank_a_step_and_how_it_fails() {
        let at = |spec: &str| parse(spec).map(|f| (f.rank, f.step, f.kind)).unwrap();
        assert_eq!(at("1:2:exit"), (1, 2, Kind::Exit));
        assert_eq!(at("0:10:hang"), (0, 10, Kind::Hang));
        assert_eq!(at("3:1:error"), (3, 1, Kind::Error));
        for bad in ["", "1", "1:2", "1:2:crash", "x:2:exit", "1:2:exit:3"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_fault_fails_its_own_rank_and_step_only() {
        let fault = parse("1:3:error").unwrap();
        assert!(fault.before_step(1, 2).is_ok() && fault.before_step(0, 3).is_ok());
        let err = fault.before_step(1, 3).unwrap_err().to_string();
        assert!(err.contains("ALEXRT_FAULT=1:3:error: rank 1 fails before step 3"), "{err}");
    }
}
