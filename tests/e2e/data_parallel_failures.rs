//! How a data-parallel job ends when one rank fails (`ALEXRT_FAULT`, the test hook of
//! `alexrt::distributed::fault`): a rank that returns an error, one that dies and one that
//! hangs each end the whole `mpirun -np 2` job with a non-zero status and a message that says
//! which rank and why, well within a bound (no rank is left waiting). Needs the `mpi` feature
//! and Open MPI; without them each test says why it is skipped.

mod common {
    #[allow(dead_code)] // each test file uses some of the helpers
    pub mod mpirun;
}

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::mpirun::{alexrt_train_command, scratch, tiny_plan};

/// The longest a failed job may take to end (a healthy run of these steps takes about 2 s).
const BOUND: Duration = Duration::from_secs(60);

/// Runs 2 ranks of tiny.ron for 4 steps with `ALEXRT_FAULT=fault` (and `env`), killing the
/// job if it outlives [`BOUND`]: its exit success, stderr and duration.
fn run_with_fault(name: &str, fault: &str, env: &[(&str, &str)]) -> Option<(bool, String, Duration)> {
    let mpirun = match common::mpirun::mpirun() {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED {name}: {why}");
            return None;
        }
    };
    let dir = scratch(name);
    tiny_plan(8, 2, true).write(&dir.join("two.bin")).unwrap();
    let mut env = env.to_vec();
    env.push(("ALEXRT_FAULT", fault));
    let args = ["--epochs", "1", "--steps-per-epoch", "4"];
    let mut cmd =
        alexrt_train_command(&dir.join("two.bin"), &dir.join("run"), Some((&mpirun, 2)), &args, &env);
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("mpirun starts");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            panic!("the job with {fault} still ran after {BOUND:?}: a rank hangs");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let stderr = reader.join().unwrap();
    eprintln!("{fault}: ended in {elapsed:.1?} with {status}");
    Some((status.success(), stderr, elapsed))
}

#[test]
fn a_rank_that_fails_with_an_error_ends_every_rank_with_its_message() {
    let Some((ok, stderr, _)) = run_with_fault("fault-error", "1:2:error", &[]) else { return };
    assert!(!ok, "the job succeeded:\n{stderr}");
    assert!(stderr.contains("rank 1: ALEXRT_FAULT=1:2:error: rank 1 fails before step 2"), "{stderr}");
    assert!(stderr.contains("ending every rank of the run"), "{stderr}");
    assert!(!stderr.contains("identical weights"), "rank 0 finished training:\n{stderr}");
}

#[test]
fn a_rank_that_dies_ends_the_job() {
    let Some((ok, stderr, _)) = run_with_fault("fault-exit", "1:2:exit", &[]) else { return };
    assert!(!ok, "the job succeeded:\n{stderr}");
    assert!(stderr.contains("rank 1 dies before step 2"), "{stderr}");
    assert!(!stderr.contains("identical weights"), "rank 0 finished training:\n{stderr}");
}

#[test]
fn a_rank_that_hangs_ends_the_job_after_the_collective_timeout() {
    let timeout = [("ALEXRT_COLLECTIVE_TIMEOUT", "3")];
    let Some((ok, stderr, elapsed)) = run_with_fault("fault-hang", "1:2:hang", &timeout) else { return };
    assert!(!ok, "the job succeeded:\n{stderr}");
    assert!(stderr.contains("rank 1 stops before step 2"), "{stderr}");
    assert!(stderr.contains("rank 0: waited 3s in"), "rank 0 did not time out:\n{stderr}");
    assert!(elapsed >= Duration::from_secs(3), "ended before the timeout: {elapsed:?}");
}
