//! Reproducibility on the CPU, as `alexrt train` runs: the same plan, seed and data give the same
//! bits run after run, whatever the thread count, and a run killed at a step and resumed from its
//! checkpoint ends with the bits of one that was not. tiny.ron exercises every parallel kernel of
//! a training step: its convolutions' weight gradients sum over tasks of several images, conv2 is
//! grouped, and LRN, overlapping pooling, dropout and the fully connected layers all run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

#[path = "common/cli.rs"]
mod cli;
use cli::{tiny_plan, Scratch};

/// `alexrt train` on `threads` threads for 2 epochs of 5 steps on synthetic images, a checkpoint
/// every 3 steps, into `out`, with `extra` flags and `env`.
fn train_command(plan: &Path, out: &Path, threads: usize, extra: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"));
    c.args(["train", plan.to_str().unwrap(), "--device", "cpu", "--epochs", "2"])
        .args(["--steps-per-epoch", "5", "--checkpoint-every", "3"])
        .args(["--train-images", "256", "--val-images", "64", "--out", out.to_str().unwrap()])
        .args(extra)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env_remove("ALEXRT_FAULT")
        .envs(env.iter().copied());
    c
}

fn train(plan: &Path, out: &Path, threads: usize, extra: &[&str], env: &[(&str, &str)]) -> Output {
    train_command(plan, out, threads, extra, env).output().unwrap()
}

/// The plain run of [`train_command`] into `out`, started now (it runs beside what the caller
/// does next, the two competing for the cores as runs on a busy machine do).
fn start(plan: &Path, out: &Path) -> std::process::Child {
    train_command(plan, out, 2, &[], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn succeeded(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "alexrt train failed ({:?}):\n{err}", o.status.code());
    err
}

/// What a run ends with, as bits: the CRC-32 of every tensor of its last checkpoint (each
/// parameter and momentum buffer) and each epoch's learning rate, training and validation
/// metrics from `metrics.jsonl` (the times aside).
#[derive(Debug, PartialEq)]
struct RunBits {
    tensors: BTreeMap<String, u32>,
    epochs: Vec<String>,
}

fn run_bits(run: &Path) -> RunBits {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: BTreeMap<String, u32> =
        file.tensors().into_iter().map(|(name, t)| (name, crc32fast::hash(t.data()))).collect();
    assert!(tensors.contains_key("conv2.weight.momentum"), "{:?}", tensors.keys());
    let epochs = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("epoch {} lr {} train {} val {}", v["epoch"], v["lr"], v["train"], v["val"])
        })
        .collect();
    RunBits { tensors, epochs }
}

/// Two threads that keep the cores busy until dropped, as other work on a shared machine does:
/// the runs' threads are preempted at random points (a sum grouped by which thread steals which
/// task would then differ from run to run).
struct BusyMachine {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    spinners: Vec<std::thread::JoinHandle<()>>,
}

impl BusyMachine {
    fn start() -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinners = (0..2)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                })
            })
            .collect();
        BusyMachine { stop, spinners }
    }
}

impl Drop for BusyMachine {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in self.spinners.drain(..) {
            let _ = s.join();
        }
    }
}

#[test]
fn two_runs_on_two_threads_end_with_the_same_bits() {
    let dir = Scratch::new("repro-twice");
    let plan = tiny_plan(&dir);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let log = succeeded(&train(&plan, &a, 2, &[], &[]));
    let first_lines: Vec<&str> = log.lines().take(3).collect();
    assert!(
        first_lines.iter().any(|l| l.starts_with("reproducibility: bit for bit on this CPU")),
        "the run's first lines say what it reproduces:\n{log}"
    );
    let busy = BusyMachine::start();
    succeeded(&train(&plan, &b, 2, &[], &[]));
    drop(busy);
    let (a, b) = (run_bits(&a), run_bits(&b));
    assert_eq!(a.epochs.len(), 2, "{:?}", a.epochs);
    assert_eq!(a, b, "two runs of the same plan, seed and data on 2 threads");
}

#[test]
fn one_two_and_three_threads_end_with_the_same_bits() {
    let dir = Scratch::new("repro-threads");
    let plan = tiny_plan(&dir);
    let bits: Vec<RunBits> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            let out = dir.join(format!("t{threads}"));
            succeeded(&train(&plan, &out, threads, &[], &[]));
            run_bits(&out)
        })
        .collect();
    assert_eq!(bits[0], bits[1], "1 thread against 2");
    assert_eq!(bits[0], bits[2], "1 thread against 3");
}

/// Kills a run right before step `kill_at` (1-based over the whole run, through the fault hook's
/// `exit`, as a crash would end it), resumes it, and compares with an uninterrupted run.
fn killed_and_resumed_ends_as_uninterrupted(kill_at: u64, resumes_at: &str) {
    let dir = Scratch::new(&format!("repro-kill-{kill_at}"));
    let plan = tiny_plan(&dir);
    let whole = dir.join("whole");
    let uninterrupted = start(&plan, &whole);
    let cut = dir.join("cut");
    let fault = format!("0:{kill_at}:exit");
    let killed = train(&plan, &cut, 2, &[], &[("ALEXRT_FAULT", &fault)]);
    assert_eq!(killed.status.code(), Some(9), "{}", String::from_utf8_lossy(&killed.stderr));
    let log = succeeded(&train(&plan, &cut, 2, &["--resume"], &[]));
    assert!(log.contains(resumes_at), "expected a resume {resumes_at}:\n{log}");
    succeeded(&uninterrupted.wait_with_output().unwrap());
    assert_eq!(run_bits(&cut), run_bits(&whole), "killed before step {kill_at} and resumed");
}

#[test]
fn a_run_killed_mid_epoch_and_resumed_ends_with_the_bits_of_one_that_was_not() {
    // Step 5 is the first epoch's last: the checkpoint of step 3 is the latest.
    killed_and_resumed_ends_as_uninterrupted(5, "at epoch 1, step 3 (3 steps done)");
}

#[test]
fn a_run_killed_after_an_epoch_and_resumed_ends_with_the_bits_of_one_that_was_not() {
    // Step 7 is the second epoch's second: the epoch's checkpoint (after validation) is the latest.
    killed_and_resumed_ends_as_uninterrupted(7, "at epoch 2, step 0 (5 steps done)");
}
