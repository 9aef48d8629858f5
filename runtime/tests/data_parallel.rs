//! Data-parallel training over MPI: `mpirun -np N alexrt train` on tiny.ron gives the weights of
//! one process trained on the combined batch (N x the plan's batch), with the gradient buckets'
//! all-reduce overlapped with the backward pass and dropout on or off; every rank holds the same
//! weights, and a plan compiled for another world size is refused. Needs a build with the `mpi`
//! feature and Open MPI's `mpirun`; without them each test says why it is skipped.

mod common {
    #[allow(dead_code)] // each test file uses some of the helpers
    pub mod mpirun;
}

use std::process::Command;

use common::mpirun::{alexrt_train, largest_difference, scratch, succeeded, tiny_plan};

/// Images per replica in a step (tiny.ron's batch is 32: smaller keeps the test quick).
const BATCH: usize = 8;
/// Training steps compared.
const STEPS: &str = "4";

fn replicas_train_as_one_process_on_the_combined_batch(ranks: usize, dropout: bool) {
    let mpirun = mpirun_or_skip!(format!("{ranks} ranks"));
    let dir = scratch(&format!("np{ranks}-dropout-{dropout}"));
    let (one, many) = (tiny_plan(BATCH * ranks, 1, dropout), tiny_plan(BATCH, ranks, dropout));
    one.write(&dir.join("one.bin")).unwrap();
    many.write(&dir.join("many.bin")).unwrap();
    let run = |plan: &str, out: &str, ranks| {
        let saved = dir.join(format!("{out}.safetensors"));
        let args = ["--epochs", "1", "--steps-per-epoch", STEPS, "--save-weights", saved.to_str().unwrap()];
        let log = succeeded(&alexrt_train(&dir.join(plan), &dir.join(out), ranks, &args, &[]));
        (log, saved)
    };
    let (_, single) = run("one.bin", "one", None);
    let (log, parallel) = run("many.bin", "many", Some((&mpirun, ranks)));
    assert!(
        log.contains(&format!("all {ranks} ranks hold identical weights")),
        "the ranks' weights were not checked equal:\n{log}"
    );
    assert!(log.contains("ms exposed of"), "no all-reduce times in the run's last lines:\n{log}");
    let worst = largest_difference(&one, &single, &parallel);
    eprintln!("{ranks} ranks vs one process after {STEPS} steps, dropout {dropout}: largest difference {worst:e} of each tensor's scale");
}

#[test]
fn two_ranks_train_the_weights_of_one_process_on_the_combined_batch() {
    replicas_train_as_one_process_on_the_combined_batch(2, true);
}

#[test]
fn two_ranks_without_dropout_train_the_weights_of_one_process_on_the_combined_batch() {
    replicas_train_as_one_process_on_the_combined_batch(2, false);
}

#[test]
fn three_ranks_train_the_weights_of_one_process_on_the_combined_batch() {
    replicas_train_as_one_process_on_the_combined_batch(3, true);
}

#[test]
fn a_plan_for_two_replicas_is_refused_by_three_ranks_and_by_one_process() {
    let mpirun = mpirun_or_skip!("world size mismatch");
    let dir = scratch("mismatch");
    tiny_plan(BATCH, 2, true).write(&dir.join("two.bin")).unwrap();
    let alexrt = env!("CARGO_BIN_EXE_alexrt");
    let plan = dir.join("two.bin");
    let out = Command::new(&mpirun)
        .args(["--oversubscribe", "--mca", "btl", "self,vader", "-np", "3", alexrt, "train"])
        .arg(&plan)
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("run3"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("compiled for 2 replicas, but the run has 3"), "{stderr}");
    let out = Command::new(alexrt)
        .args(["train"])
        .arg(&plan)
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("run1"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("start it with `mpirun -np 2`"), "{stderr}");
}
