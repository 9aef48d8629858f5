//! A test hook for how a data-parallel job ends when one rank fails: `ALEXRT_FAULT=RANK:STEP:KIND`
//! makes rank RANK fail right before the training step STEP (1-based, counted from the start of
//! training, across epochs and resumes) in the way KIND says:
//!
//! - `error`: the rank returns an error, as a bad input would; it ends every rank (MPI_Abort);
//! - `exit`: the process dies at once (exit status 9), as a crash would; `mpirun` ends the job;
//! - `hang`: the rank stops (sleeps), as a stuck process would; the other ranks' collective
//!   timeout (`ALEXRT_COLLECTIVE_TIMEOUT`) ends the job.
//!
//! Unset, it does nothing. `runtime/tests/rank_failure.rs` uses it.

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

/// Fails as `ALEXRT_FAULT` asks if it names `rank` and `step`; does nothing otherwise.
pub fn inject(rank: usize, step: u64) -> Result<(), RunError> {
    let Ok(spec) = std::env::var(VAR) else { return Ok(()) };
    let (at_rank, at_step, kind) = parse(&spec)?;
    if (at_rank, at_step) != (rank, step) {
        return Ok(());
    }
    match kind {
        Kind::Error => {
            Err(RunError::Input(format!("{VAR}={spec}: rank {rank} fails before step {step} (test hook)")))
        }
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

fn parse(spec: &str) -> Result<(usize, u64, Kind), RunError> {
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
    Ok((rank, step, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_spec_names_a_rank_a_step_and_how_it_fails() {
        assert_eq!(parse("1:2:exit").unwrap(), (1, 2, Kind::Exit));
        assert_eq!(parse("0:10:hang").unwrap(), (0, 10, Kind::Hang));
        assert_eq!(parse("3:1:error").unwrap(), (3, 1, Kind::Error));
        for bad in ["", "1", "1:2", "1:2:crash", "x:2:exit", "1:2:exit:3"] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
