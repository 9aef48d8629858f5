//! `--resume` across world sizes: a checkpoint written mid-epoch by 2 ranks at batch 8 each is
//! continued by one process at batch 16 (the same global batch), and one written by one process
//! is continued by 2 ranks, each ending with the weights of a run that was never interrupted.
//! The interruption is a rank dying right after the checkpoint (`ALEXRT_FAULT`). Needs the `mpi`
//! feature and Open MPI; without them each test says why it is skipped.

mod common {
    #[allow(dead_code)] // each test file uses some of the helpers
    pub mod mpirun;
}

use std::path::Path;

use common::mpirun::{alexrt_train, largest_difference, scratch, succeeded, tiny_plan};

/// Steps in the epoch; the checkpoint is written after the second and the run dies before the
/// third.
const STEPS: &str = "4";

/// Trains tiny.ron for [`STEPS`] steps as `first` (ranks, or one process), interrupted after a
/// checkpoint at step 2, resumed as `then`; compares with one uninterrupted process.
fn resume_across_world_sizes(name: &str, first: Option<usize>, then: Option<usize>) {
    let mpirun = mpirun_or_skip!(name);
    let dir = scratch(name);
    let plan_for = |ranks: Option<usize>| -> (String, usize) {
        let n = ranks.unwrap_or(1);
        let file = format!("x{n}.bin");
        tiny_plan(16 / n, n, true).write(&dir.join(&file)).unwrap();
        (file, n)
    };
    let launch = |ranks: Option<usize>| ranks.map(|n| (mpirun.as_path(), n));
    let reference = dir.join("uninterrupted.safetensors");
    let (one, _) = plan_for(None);
    let args = ["--epochs", "1", "--steps-per-epoch", STEPS, "--save-weights", reference.to_str().unwrap()];
    succeeded(&alexrt_train(&dir.join(&one), &dir.join("uninterrupted"), None, &args, &[]));

    let run = dir.join("interrupted");
    let (plan, _) = plan_for(first);
    let args = ["--epochs", "1", "--steps-per-epoch", STEPS, "--checkpoint-every", "2"];
    let died = alexrt_train(&dir.join(&plan), &run, launch(first), &args, &[("ALEXRT_FAULT", "0:3:exit")]);
    let log = String::from_utf8_lossy(&died.stderr);
    assert!(!died.status.success(), "the first run was not interrupted:\n{log}");
    assert!(Path::new(&run).join("checkpoint.safetensors").exists(), "no checkpoint:\n{log}");

    let resumed = dir.join("resumed.safetensors");
    let (plan, _) = plan_for(then);
    let args = [
        "--resume",
        "--epochs",
        "1",
        "--steps-per-epoch",
        STEPS,
        "--save-weights",
        resumed.to_str().unwrap(),
    ];
    let log = succeeded(&alexrt_train(&dir.join(&plan), &run, launch(then), &args, &[]));
    assert!(log.contains("at epoch 1, step 2 (2 steps done)"), "not resumed at step 2:\n{log}");

    let worst = largest_difference(&tiny_plan(16, 1, true), &reference, &resumed);
    eprintln!("{name}: largest difference {worst:e} of each tensor's scale against the uninterrupted run");
}

#[test]
fn a_checkpoint_of_two_ranks_resumes_in_one_process_with_the_weights_of_an_uninterrupted_run() {
    resume_across_world_sizes("resume-2-to-1", Some(2), None);
}

#[test]
fn a_checkpoint_of_one_process_resumes_on_two_ranks_with_the_weights_of_an_uninterrupted_run() {
    resume_across_world_sizes("resume-1-to-2", None, Some(2));
}
