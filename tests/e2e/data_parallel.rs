//! Data-parallel training over MPI: `mpirun -np N alexrt train` on tiny.ron gives the weights of
//! one process trained on the combined batch (N x the plan's batch), with the gradient buckets'
//! all-reduce overlapped with the backward pass and dropout on or off; every rank holds the same
//! weights, and a plan compiled for another world size is refused; `alexrt bench --ab-all-reduce`
//! times steps with and without the all-reduce in one run. Needs a build with the `mpi` feature
//! and Open MPI's `mpirun`; without them each test says why it is skipped.

mod common {
    #[allow(dead_code)] // each test file uses some of the helpers
    pub mod mpirun;
}

use std::process::Command;

use common::mpirun::{
    alexrt_train, alexrt_under_mpirun, largest_difference, scratch, succeeded, tiny_plan, tiny_plan_in,
};

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
    // Where each rank's steps went, one line a rank, the all-reduce's part among them.
    for r in 0..ranks {
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("  rank {r}: ")))
            .unwrap_or_else(|| panic!("no line of where rank {r}'s steps went:\n{log}"));
        assert!(
            line.contains("the gradient all-reduce's exposed time") && line.contains("at the metrics' sum"),
            "{line}"
        );
    }
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
fn two_ranks_train_an_f16_plan_to_identical_weights_and_one_loss_scale() {
    let mpirun = mpirun_or_skip!("2 ranks, f16");
    let dir = scratch("np2-f16");
    tiny_plan_in(BATCH, 2, true, alexc::ir::Precision::F16).write(&dir.join("f16.bin")).unwrap();
    let args = ["--epochs", "1", "--steps-per-epoch", STEPS];
    let log =
        succeeded(&alexrt_train(&dir.join("f16.bin"), &dir.join("out"), Some((&mpirun, 2)), &args, &[]));
    assert!(log.contains("all 2 ranks hold identical weights"), "{log}");
    // The verdict is taken on the averaged gradients: rank 0's checkpoint counts every step good.
    let file = alexrt::tensor_file::TensorFile::read(&dir.join("out/checkpoint.safetensors")).unwrap();
    let steps: f32 = STEPS.parse().unwrap();
    assert_eq!(file.tensor_f32("loss_scale", &[3]).unwrap(), [65536.0, steps, 0.0]);
}

#[test]
fn a_plan_for_two_replicas_is_refused_by_three_ranks_and_by_one_process() {
    let mpirun = mpirun_or_skip!("world size mismatch");
    let dir = scratch("mismatch");
    tiny_plan(BATCH, 2, true).write(&dir.join("two.bin")).unwrap();
    let alexrt = env!("CARGO_BIN_EXE_alexrt-under-test");
    let plan = dir.join("two.bin");
    let out = alexrt_under_mpirun(&mpirun, 3)
        .arg("train")
        .arg(&plan)
        .args(["--device", "cpu", "--out"])
        .arg(dir.join("run3"))
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

#[test]
fn bench_times_pairs_of_steps_with_and_without_the_all_reduce_and_refuses_a_one_process_plan() {
    let mpirun = mpirun_or_skip!("bench --ab-all-reduce");
    let dir = scratch("ab");
    tiny_plan(BATCH, 2, true).write(&dir.join("two.bin")).unwrap();
    tiny_plan(BATCH, 1, true).write(&dir.join("one.bin")).unwrap();
    let bench = |plan: &str, json: bool| {
        let mut c = alexrt_under_mpirun(&mpirun, 2);
        c.arg("bench").arg(dir.join(plan)).args(["--device", "cpu", "--steps", "3", "--ab-all-reduce"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = bench("two.bin", true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Rank 0 alone prints, one object.
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let pairs = report["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "{report}");
    for p in pairs {
        assert!(
            p["with_all_reduce"].as_f64().unwrap() > 0.0 && p["without"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    // The exposed time is counted in steps with the all-reduce only, and is part of them.
    let exposed = report["all_reduce_exposed_seconds"].as_f64().unwrap();
    let longest_with = pairs.iter().map(|p| p["with_all_reduce"].as_f64().unwrap()).fold(0.0, f64::max);
    assert!(exposed > 0.0 && exposed < longest_with, "{report}");
    assert!(report["all_reduce_adds_median"].as_f64().unwrap().is_finite(), "{report}");
    let out = bench("one.bin", false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--ab-all-reduce times the gradient all-reduce of a data-parallel training plan"),
        "{stderr}"
    );
}

#[test]
fn a_data_parallel_steps_trace_shows_its_gradient_buckets_in_flight_on_their_own_track() {
    let mpirun = mpirun_or_skip!("bench --trace under mpirun");
    let dir = scratch("trace");
    tiny_plan(BATCH, 2, true).write(&dir.join("two.bin")).unwrap();
    let trace = dir.join("step.json");
    let mut c = alexrt_under_mpirun(&mpirun, 2);
    c.arg("bench").arg(dir.join("two.bin")).args(["--device", "cpu", "--steps", "1", "--trace"]).arg(&trace);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let buckets: Vec<_> = events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "all-reduce").collect();
    assert!(!buckets.is_empty(), "the buckets in flight are traced: {doc}");
    for b in &buckets {
        assert!(b["name"].as_str().unwrap().starts_with("bucket "), "{b}");
        assert!(b["args"]["bytes"].as_u64().unwrap() > 0 && b["dur"].as_f64().unwrap() >= 0.0, "{b}");
    }
    let track = buckets[0]["tid"].clone();
    assert!(events.iter().filter(|e| e["ph"] == "X" && e["cat"] != "all-reduce").all(|e| e["tid"] != track));
    assert!(
        events.iter().any(|e| e["name"] == "thread_name" && e["tid"] == track),
        "the bucket track is named"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A folder of tiny.ron's 10 classes: `train` images per class in train/ and one per class in
/// val/, small solid-colour PNGs, and `broken` unreadable files (a JPEG header, then text) in
/// each split's first class.
fn folder_with_unreadable_images(dir: &std::path::Path, train: usize, broken: [usize; 2]) {
    for (split, n, bad) in [("train", train, broken[0]), ("val", 1, broken[1])] {
        for c in 0..10u8 {
            let class = dir.join(split).join(format!("c{c}"));
            std::fs::create_dir_all(&class).unwrap();
            for i in 0..n {
                let colour = image::Rgb([25 * c, 10 * i as u8, 200 - 20 * c]);
                image::RgbImage::from_pixel(12, 12, colour).save(class.join(format!("{i:03}.png"))).unwrap();
            }
        }
        for k in 0..bad {
            std::fs::write(
                dir.join(split).join("c0").join(format!("bad{k}.JPEG")),
                b"\xff\xd8\xff not a jpeg",
            )
            .unwrap();
        }
    }
}

#[test]
fn two_ranks_count_the_unreadable_images_of_both() {
    let mpirun = mpirun_or_skip!("unreadable images on two ranks");
    let dir = scratch("unreadable");
    let data = dir.join("data");
    // 60 + 4 training images: 4 steps of 2 x 8 read every one of them in the epoch; 10 + 2
    // validation images, read alternately by the ranks, so each rank meets one unreadable one.
    folder_with_unreadable_images(&data, 6, [4, 2]);
    tiny_plan(BATCH, 2, true).write(&dir.join("two.bin")).unwrap();
    let args = ["--data", data.to_str().unwrap(), "--epochs", "1"];
    let log =
        succeeded(&alexrt_train(&dir.join("two.bin"), &dir.join("run"), Some((&mpirun, 2)), &args, &[]));
    assert!(log.contains(", 6 unreadable images skipped"), "the epoch line counts both ranks' 6:\n{log}");
    let records = std::fs::read_to_string(dir.join("run/metrics.jsonl")).unwrap();
    let epoch: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    assert_eq!(epoch["skipped"], 6, "{epoch}");
}
