//! Training as `alexrt train` runs it: the network learns the synthetic set, a non-finite loss
//! stops it with a clear error, and weights files round-trip or are refused by name.

use std::process::Command;

use alexc::ir::Mode;
use alexc::plan::Plan;
use alexrt::data::Loader;
use alexrt::data::{Dataset, Synthetic};
use alexrt::exec::Executor;
use alexrt::progress::Progress;
use alexrt::train::{evaluate, train, TrainConfig};
use alexrt::{weights, Cpu, RunError};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tiny_plan(edit: impl Fn(String) -> String, mode: Mode) -> Plan {
    let text = edit(std::fs::read_to_string(root().join("graphs/tiny.ron")).unwrap());
    let checked = alexc::front_end_str(&text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lowered = alexc::lower(&checked, mode, 32, &mut |_, _, _| {}).unwrap();
    lowered.into_plan(mode, "tiny.ron")
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        max_steps_per_epoch: None,
        batch_size: 32,
        loader: Loader::default(),
        checkpoint_dir: None,
        checkpoint_every: None,
        stats: None,
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("alexrt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn tiny_learns_the_synthetic_set_far_above_chance() {
    let plan = tiny_plan(|t| t, Mode::Train);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let shape = exec.input_shape();
    let train_set = Synthetic::new(shape, 10, 1024, 7, "train");
    let val_set = Synthetic::new(shape, 10, 256, 7, "val");
    let (before, _) = evaluate(&mut exec, &val_set, 32, &Loader::default()).unwrap();
    let cfg = config(2);
    let start = Progress::start(&exec.graph.spec);
    let records = train(&mut exec, &train_set, &val_set, &cfg, start, |_| {}).unwrap().records;
    let after = records.last().unwrap().val;
    assert!(before.top1 < 0.3, "untrained: {before:?}");
    assert!(after.top1 > 0.6, "chance is 10%; after two epochs: {after:?}");
    assert!(after.loss < before.loss);
    // The runtime held no more than the plan's arena (plus what it keeps for the caller).
    assert!(
        records[0].peak_bytes <= plan.memory.arena_bytes + 64 * 1024,
        "{} vs {}",
        records[0].peak_bytes,
        plan.memory.arena_bytes
    );
}

#[test]
fn a_non_finite_loss_stops_training_with_a_clear_error() {
    let plan = tiny_plan(|t| t.replace("Sgd(lr: 0.01", "Sgd(lr: 1e30"), Mode::Train);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let shape = exec.input_shape();
    let data = Synthetic::new(shape, 10, 256, 7, "train");
    let cfg = config(3);
    let start = Progress::start(&exec.graph.spec);
    match train(&mut exec, &data, &data, &cfg, start, |_| {}) {
        Err(e @ RunError::NonFinite { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("training stopped: the loss became"), "{msg}");
            assert!(msg.contains("lower the learning rate"), "{msg}");
        }
        other => panic!("expected a non-finite loss error, got {other:?}"),
    }
}

#[test]
fn weights_round_trip_and_mismatches_name_the_tensor() {
    let dir = scratch("weights");
    let plan = tiny_plan(|t| t, Mode::Train);
    let mut a = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let (batch, _) =
        Synthetic::new(a.input_shape(), 10, 32, 1, "x").batch(&(0..32).collect::<Vec<_>>(), None);
    a.step(&batch, 0.01).unwrap();
    let path = dir.join("w.safetensors");
    weights::save(&a, &path).unwrap();
    let other = tiny_plan(|t| t.replace("seed: 7", "seed: 8"), Mode::Train);
    let mut b = Executor::<Cpu>::new(&other, Default::default()).unwrap();
    assert_ne!(
        a.persistent_values("fc3.weight").unwrap().unwrap(),
        b.persistent_values("fc3.weight").unwrap().unwrap()
    );
    weights::load(&mut b, &path).unwrap();
    for (name, _) in a.param_names() {
        assert_eq!(
            a.persistent_values(&name).unwrap().unwrap(),
            b.persistent_values(&name).unwrap().unwrap(),
            "{name}"
        );
    }

    // A plan of another shape: the first mismatching tensor is named, with both shapes.
    let wide = tiny_plan(|t| t.replace("Linear(out_features: 64)", "Linear(out_features: 65)"), Mode::Train);
    let mut c = Executor::<Cpu>::new(&wide, Default::default()).unwrap();
    let err = weights::load(&mut c, &path).unwrap_err().to_string();
    assert!(err.contains("tensor `fc3.weight` has shape [64, 1568], the plan needs [65, 1568]"), "{err}");

    // A file without a tensor the plan needs.
    let missing = dir.join("missing.safetensors");
    let data: Vec<u8> = vec![0; 16 * 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![16], &data).unwrap();
    std::fs::write(&missing, safetensors::serialize(vec![("conv1.bias", view)], None).unwrap()).unwrap();
    let err = weights::load(&mut b, &missing).unwrap_err().to_string();
    assert!(err.contains("tensor `conv1.weight` is missing"), "{err}");

    // A tensor the plan does not know.
    let foreign = dir.join("foreign.safetensors");
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![16], &data).unwrap();
    std::fs::write(&foreign, safetensors::serialize(vec![("features.0.weight", view)], None).unwrap())
        .unwrap();
    let err = weights::load(&mut b, &foreign).unwrap_err().to_string();
    assert!(err.contains("tensor `features.0.weight` is not a parameter of graph `tiny`"), "{err}");

    // The wrong dtype, and a file that is not safetensors at all.
    let ints = dir.join("ints.safetensors");
    let all = a.param_names();
    let int_data: Vec<Vec<u8>> =
        all.iter().map(|(_, n)| vec![0u8; 4 * a.graph.g[*n].outputs[0].elements_per_sample()]).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = all
        .iter()
        .zip(&int_data)
        .map(|((name, n), d)| {
            let shape = a.graph.g[*n].outputs[0].dims.clone();
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::I32, shape, d).unwrap())
        })
        .collect();
    std::fs::write(&ints, safetensors::serialize(views, None).unwrap()).unwrap();
    let err = weights::load(&mut b, &ints).unwrap_err().to_string();
    assert!(err.contains("is I32; use F32, F64, BF16 or F16"), "{err}");

    // bf16 and f16 files, as many published models are saved, are widened to f32 as they load.
    for (dtype, to_bits) in [
        (
            safetensors::Dtype::BF16,
            (|v: f32| burn::tensor::bf16::from_f32(v).to_le_bytes()) as fn(f32) -> [u8; 2],
        ),
        (safetensors::Dtype::F16, |v: f32| burn::tensor::f16::from_f32(v).to_le_bytes()),
    ] {
        let half = dir.join(format!("{dtype:?}.safetensors"));
        let values: Vec<(String, Vec<f32>, Vec<usize>)> = all
            .iter()
            .map(|(name, n)| {
                (
                    name.clone(),
                    a.persistent_values(name).unwrap().unwrap(),
                    a.graph.g[*n].outputs[0].dims.clone(),
                )
            })
            .collect();
        let bytes: Vec<Vec<u8>> =
            values.iter().map(|(_, v, _)| v.iter().flat_map(|x| to_bits(*x)).collect()).collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = values
            .iter()
            .zip(&bytes)
            .map(|((name, _, shape), b)| {
                (name.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), b).unwrap())
            })
            .collect();
        std::fs::write(&half, safetensors::serialize(views, None).unwrap()).unwrap();
        weights::load(&mut b, &half).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        for (name, v, _) in &values {
            let loaded = b.persistent_values(name).unwrap().unwrap();
            for (x, y) in v.iter().zip(&loaded) {
                let widened = match dtype {
                    safetensors::Dtype::BF16 => burn::tensor::bf16::from_f32(*x).to_f32(),
                    _ => burn::tensor::f16::from_f32(*x).to_f32(),
                };
                assert_eq!(widened.to_bits(), y.to_bits(), "{dtype:?} {name}");
            }
        }
    }
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"hello").unwrap();
    let err = weights::load(&mut b, &junk).unwrap_err().to_string();
    assert!(err.contains("not a safetensors file"), "{err}");
}

fn alexrt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alexrt-under-test")).args(args).current_dir(root()).output().unwrap()
}

#[test]
fn the_command_line_trains_and_refuses_bad_input() {
    let dir = scratch("cli");
    let plan_path = dir.join("tiny.bin");
    tiny_plan(|t| t, Mode::Train).write(&plan_path).unwrap();
    let weights_path = dir.join("tiny.safetensors");
    let o = alexrt(&[
        "train",
        plan_path.to_str().unwrap(),
        "--epochs",
        "1",
        "--train-images",
        "256",
        "--val-images",
        "64",
        "--save-weights",
        weights_path.to_str().unwrap(),
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert!(err.contains("epoch 1/1: lr 0.01000"), "{err}");
    assert!(dir.join("run/metrics.jsonl").exists() && dir.join("run/loss.png").exists());
    assert!(out.contains("trained `tiny` for 1 epochs"), "{out}");
    assert!(weights_path.exists());

    let infer = dir.join("infer.bin");
    tiny_plan(|t| t, Mode::Infer).write(&infer).unwrap();
    let o = alexrt(&["train", infer.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("an inference plan cannot be trained"));

    let o = alexrt(&["train", dir.join("absent.bin").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the plan file"));

    let o = alexrt(&[
        "train",
        plan_path.to_str().unwrap(),
        "--weights",
        dir.join("none.safetensors").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));

    let o = alexrt(&["train", plan_path.to_str().unwrap(), "--epochs", "many"]);
    assert_eq!(o.status.code(), Some(2));

    // Zero timed steps have no time to report: refused, not printed as a time.
    let o = alexrt(&["bench", plan_path.to_str().unwrap(), "--device", "cpu", "--steps", "0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--steps") && err.contains("give 1 or more") && o.stdout.is_empty(), "{err}");
    // So are a kernel check of no images or no repetitions.
    for flag in ["--batch", "--steps"] {
        let o = alexrt(&["check-kernels", "--device", "cpu", flag, "0"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.contains(flag) && err.contains("give 1 or more"), "{err}");
    }
}

/// The fused kernels compute what the fused groups' steps compute one by one: on the CPU backend
/// (where they are burn ops) the two agree exactly, over training steps with dropout on and in
/// inference, where the fused conv + bias + ReLU + LRN keeps no ReLU output.
#[test]
fn fused_kernels_and_step_by_step_agree_exactly_on_the_cpu() {
    for mode in [Mode::Train, Mode::Infer] {
        let plan = tiny_plan(|t| t, mode);
        let fused_nodes = plan
            .graph
            .node_indices()
            .iter()
            .filter(|&&n| matches!(plan.graph.g[n].op, alexc::catalog::Op::Fused(_)))
            .count();
        assert!(fused_nodes >= 3, "{mode:?}: {fused_nodes} fused nodes");
        let data = Synthetic::new([3, 31, 31], 10, 64, 5, "train");
        let (batch, failed) = data.batch(&(0..8).collect::<Vec<_>>(), None);
        assert!(failed.is_empty());
        let mut a = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
        let mut b = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
        b.options.fused_kernels = false;
        for _ in 0..2 {
            let (x, y) = (a.step(&batch, 0.01).unwrap(), b.step(&batch, 0.01).unwrap());
            assert_eq!(x.logits, y.logits, "{mode:?}");
            assert_eq!(x.loss, y.loss, "{mode:?}");
        }
        for (name, _) in a.persistent_names() {
            assert_eq!(
                a.persistent_values(&name).unwrap().unwrap(),
                b.persistent_values(&name).unwrap().unwrap(),
                "{name}"
            );
        }
    }
}

/// The split-grouped-convolution lowering computes the same step as the grouped convolutions:
/// loss, logits and every parameter after two steps agree (to f32 rounding: the convolution
/// library sums in another order).
#[test]
fn the_split_grouped_conv_lowering_trains_the_same() {
    let text = std::fs::read_to_string(root().join("graphs/tiny.ron")).unwrap();
    let checked = alexc::front_end_str(&text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let split = alexc::Lowering { split_grouped_conv: true, ..Default::default() };
    let plans = [
        alexc::lower(&checked, Mode::Train, 8, &mut |_, _, _| {}).unwrap().into_plan(Mode::Train, "tiny.ron"),
        alexc::lower_with(&checked, Mode::Train, 8, &split, &mut |_, _, _| {})
            .unwrap()
            .into_plan(Mode::Train, "tiny.ron"),
    ];
    assert!(plans[1]
        .graph
        .node_indices()
        .iter()
        .any(|&n| matches!(plans[1].graph.g[n].op, alexc::catalog::Op::Concat(_))));
    let data = Synthetic::new([3, 31, 31], 10, 64, 5, "train");
    let (batch, _) = data.batch(&(0..8).collect::<Vec<_>>(), None);
    let mut execs: Vec<Executor<Cpu>> =
        plans.iter().map(|p| Executor::new(p, Default::default()).unwrap()).collect();
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + a.abs());
    for _ in 0..2 {
        let a = execs[0].step(&batch, 0.01).unwrap();
        let b = execs[1].step(&batch, 0.01).unwrap();
        assert!(close(a.loss.unwrap(), b.loss.unwrap()), "{:?} vs {:?}", a.loss, b.loss);
        assert!(a.logits.iter().zip(&b.logits).all(|(x, y)| close(*x, *y)));
    }
    for (name, _) in execs[0].persistent_names() {
        let (p, q) = (
            execs[0].persistent_values(&name).unwrap().unwrap(),
            execs[1].persistent_values(&name).unwrap().unwrap(),
        );
        assert!(p.iter().zip(&q).all(|(x, y)| close(*x as f64, *y as f64)), "{name}");
    }
    // Evaluation runs the forward phase alone: the slices it needs are in it.
    let (a, b) = (execs[0].forward(&batch).unwrap(), execs[1].forward(&batch).unwrap());
    assert!(a.logits.iter().zip(&b.logits).all(|(x, y)| close(*x, *y)));
}
