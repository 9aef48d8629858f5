//! What a run leaves to look inside it: `alexrt train`'s TensorBoard event file, read back by the
//! `tensorboard` package's own reader (SKIPPED without it) against metrics.jsonl, and `alexrt
//! bench --trace`'s Chrome trace of a step, one slice per node, a track per device.

mod common {
    pub mod python;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use alexc::ir::Mode;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alexnet-records-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn alexrt(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")).args(args).output().unwrap();
    assert!(o.status.success(), "alexrt {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tiny_plan(dir: &Path, mode: Mode, devices: u8) -> PathBuf {
    let checked = alexc::front_end(&root().join("graphs/tiny.ron"), &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering { devices, ..Default::default() };
    let plan = alexc::lower_with(&checked, mode, 8, &lowering, &mut |_, _, _| {})
        .unwrap()
        .into_plan(mode, "tiny.ron");
    let path = dir.join(format!("tiny-{devices}.bin"));
    plan.write(&path).unwrap();
    path
}

#[test]
fn a_training_runs_event_file_holds_its_curves_as_tensorboard_reads_them() {
    let dir = scratch("tensorboard");
    let plan = tiny_plan(&dir, Mode::Train, 1);
    let out = dir.join("run");
    alexrt(&[
        "train",
        plan.to_str().unwrap(),
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--train-images",
        "32",
        "--val-images",
        "16",
        "--out",
        out.to_str().unwrap(),
    ]);
    let files: Vec<_> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let events: Vec<_> = files.iter().filter(|f| f.starts_with("events.out.tfevents.")).collect();
    assert_eq!(events.len(), 1, "{files:?}");
    assert!(files.contains(&"metrics.jsonl".to_string()), "metrics.jsonl stays: {files:?}");
    let python = python_or_skip!("run_records::a_training_runs_event_file", &["tensorboard"]);
    let o = Command::new(python).arg(common::python::script("read_events.py")).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scalars: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(scalars["file_version"][0], "brain.Event:2");
    // Batch 8 over 32 images: 4 steps an epoch, numbered across the epochs.
    let steps: Vec<i64> =
        scalars["step/loss"].as_array().unwrap().iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert_eq!(steps, (1..=8).collect::<Vec<_>>());
    assert_eq!(scalars["step/lr"].as_array().unwrap().len(), 8);
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (tag, path) in [
        ("epoch/train_loss", ["train", "loss"]),
        ("epoch/val_top1", ["val", "top1"]),
        ("epoch/val_top5", ["val", "top5"]),
    ] {
        let series = scalars[tag].as_array().unwrap_or_else(|| panic!("no {tag}: {scalars}"));
        assert_eq!(series.len(), 2, "{tag}");
        for (p, m) in series.iter().zip(&metrics) {
            let want = m[path[0]][path[1]].as_f64().unwrap();
            assert!(
                (p[1].as_f64().unwrap() - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{tag}: {p} vs {want}"
            );
        }
    }
    for tag in [
        "epoch/val_loss",
        "epoch/train_top1",
        "epoch/train_top5",
        "epoch/images_per_second",
        "epoch/step_seconds",
        "epoch/lr",
    ] {
        assert_eq!(scalars[tag].as_array().map(Vec::len), Some(2), "{tag}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The trace's slices (`ph: X`) and track names, for a bench of `plan` on `device`.
fn trace(plan: &Path, device: &str, out: &Path) -> (Vec<serde_json::Value>, Vec<String>) {
    alexrt(&[
        "bench",
        plan.to_str().unwrap(),
        "--device",
        device,
        "--steps",
        "1",
        "--warmup",
        "0",
        "--trace",
        out.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap().clone();
    let slices = events.iter().filter(|e| e["ph"] == "X").cloned().collect();
    let tracks = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect();
    (slices, tracks)
}

#[test]
fn a_benched_steps_trace_has_a_slice_per_node_on_its_devices_track() {
    let dir = scratch("trace");
    let plan_path = tiny_plan(&dir, Mode::Train, 1);
    let plan = alexc::plan::Plan::read(&plan_path).unwrap();
    let (slices, tracks) = trace(&plan_path, "cpu", &dir.join("step.json"));
    assert_eq!(slices.len(), plan.graph.schedule.len(), "one slice per scheduled node");
    assert_eq!(tracks, ["device d0"]);
    let mut last_end = 0.0f64;
    for (s, &n) in slices.iter().zip(&plan.graph.schedule) {
        assert_eq!(s["name"], plan.graph.g[n].name.as_str(), "in schedule order");
        assert_eq!(s["args"]["op"], plan.graph.g[n].op.def().name());
        assert!(s["args"]["kernel"].as_str().is_some_and(|k| !k.is_empty()));
        assert!(s["args"]["bytes_out"].as_u64().unwrap() > 0 || plan.graph.g[n].outputs.is_empty());
        let (ts, dur) = (s["ts"].as_f64().unwrap(), s["dur"].as_f64().unwrap());
        assert!(ts >= last_end - 1.0 && dur >= 0.0, "slices follow one another: {s}");
        last_end = ts + dur;
    }
    let conv = slices.iter().find(|s| s["name"] == "norm1").expect("the fused conv1 node");
    assert!(conv["args"]["kernel"].as_str().unwrap().contains("conv2d+bias_add+relu+lrn"), "{conv}");
    // Placed on two devices: a track each.
    let placed = tiny_plan(&dir, Mode::Train, 2);
    let (slices, tracks) = trace(&placed, "cpu,cpu", &dir.join("placed.json"));
    assert!(
        tracks.contains(&"device d0".to_string()) && tracks.contains(&"device d1".to_string()),
        "{tracks:?}"
    );
    assert!(slices.iter().any(|s| s["tid"] == 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn infer_takes_the_datasets_mean_from_stats_and_prints_json_for_other_tools() {
    let dir = scratch("infer");
    let text = std::fs::read_to_string(root().join("graphs/tiny.ron")).unwrap().replace(
        "    training: (batch_size: 32",
        "    data: (resize_short_side: 31, center_crop: 31, mean: Dataset),\n    training: (batch_size: 32",
    );
    let checked = alexc::front_end_str(&text, "tiny-dataset-mean.ron", &mut |_, _, _| {}).unwrap();
    let plan = alexc::lower(&checked, Mode::Infer, 1, &mut |_, _, _| {}).unwrap().into_plan(Mode::Infer, "t");
    let plan_path = dir.join("plan.bin");
    plan.write(&plan_path).unwrap();
    // A weights file as PyTorch writes one: parameters only, no statistics, no class names.
    let params: Vec<(String, Vec<usize>, Vec<f32>)> = plan
        .graph
        .g
        .node_weights()
        .filter_map(|n| match &n.op {
            alexc::catalog::Op::Param(p) => {
                let len = p.shape.iter().product::<usize>();
                Some((
                    n.name.clone(),
                    p.shape.clone(),
                    (0..len).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect(),
                ))
            }
            _ => None,
        })
        .collect();
    let w = dir.join("w.safetensors");
    std::fs::write(&w, alexc::onnx::weights::to_bytes(&params, Default::default()).unwrap()).unwrap();
    let img = dir.join("a.png");
    image::RgbImage::from_fn(31, 31, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 128]))
        .save(&img)
        .unwrap();
    let infer = |extra: &[&str]| {
        let mut args = vec![
            "infer",
            plan_path.to_str().unwrap(),
            "--device",
            "cpu",
            "--weights",
            w.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        args.push(img.to_str().unwrap());
        Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")).args(&args).output().unwrap()
    };
    let refused = infer(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("--stats") && err.contains("--data"), "the refusal names the way out: {err}");
    let stats = dir.join("alexrt-stats.json");
    let s = r#"{"images": 1, "skipped": 0, "mean": [120.0, 110.0, 100.0], "eigenvalues": [0.2, 0.02, 0.004],
        "eigenvectors": [[-0.57, 0.72, 0.4], [-0.58, 0.0, -0.81], [-0.58, -0.69, 0.42]]}"#;
    std::fs::write(&stats, s).unwrap();
    for how in [
        vec!["--stats", stats.to_str().unwrap(), "--logits"],
        vec!["--data", dir.to_str().unwrap(), "--logits"],
    ] {
        let o = infer(&how);
        assert!(o.status.success(), "{how:?}: {}", String::from_utf8_lossy(&o.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let image = &doc["images"][0];
        let logits: Vec<f64> = serde_json::from_value(image["logits"].clone()).unwrap();
        assert_eq!(logits.len(), 10);
        let top5 = image["top5"].as_array().unwrap();
        assert_eq!(top5.len(), 5);
        let z: f64 = logits.iter().map(|l| l.exp()).sum();
        for t in top5 {
            let c = t["class"].as_u64().unwrap() as usize;
            assert_eq!(t["name"], format!("class {c}"));
            let p = t["probability"].as_f64().unwrap();
            assert!((p - logits[c].exp() / z).abs() < 1e-9, "the probability is the logits' softmax: {t}");
        }
        let probs: Vec<f64> = top5.iter().map(|t| t["probability"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "most probable first: {probs:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
