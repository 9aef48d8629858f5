//! A bf16 plan on the CPU: its steps follow the f32 steps within bf16's precision, and tiny.ron
//! trained in bf16 learns what it learns in f32. An f16 plan: its steps follow the f32 steps, a
//! step whose scaled gradients overflow is skipped whole and halves the loss scale, good steps
//! double it, and a checkpoint keeps it.

#[path = "common/tiny.rs"]
mod tiny;

use alexc::ir::Precision;
use alexrt::data::{Dataset, Loader, Synthetic};
use alexrt::exec::Executor;
use alexrt::progress::Progress;
use alexrt::train::{train, TrainConfig};
use alexrt::Cpu;
use tiny::tiny;

/// Every parameter of `exec`, by name.
fn params(exec: &Executor<Cpu>) -> Vec<(String, Vec<f32>)> {
    exec.graph
        .node_indices()
        .into_iter()
        .filter(|&n| matches!(exec.graph.g[n].op, alexc::catalog::Op::Param(_)))
        .map(|n| {
            let name = exec.graph.g[n].name.clone();
            let values = exec.persistent_values(&name).unwrap().unwrap();
            (name, values)
        })
        .collect()
}

/// Batch `step` of 16 synthetic images.
fn batch(exec: &Executor<Cpu>, step: usize) -> alexrt::exec::Batch {
    let data = Synthetic::new(exec.input_shape(), 10, 16 * (step + 1), 3, "train");
    data.batch(&(step * 16..(step + 1) * 16).collect::<Vec<_>>(), None).0
}

/// The losses of `steps` steps, and every parameter's change over them, in `precision`.
fn run(precision: Precision, steps: usize) -> (Vec<f64>, Vec<(String, Vec<f32>)>) {
    let plan = tiny(precision, 16);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let before = params(&exec);
    let mut losses = Vec::new();
    for step in 0..steps {
        let b = batch(&exec, step);
        losses.push(exec.step(b, 0.01).unwrap().loss.unwrap());
    }
    let changes = params(&exec)
        .into_iter()
        .zip(before)
        .map(|((name, after), (_, before))| (name, after.iter().zip(&before).map(|(a, b)| a - b).collect()))
        .collect();
    (losses, changes)
}

/// Three steps in `precision` against three in f32: each loss within `loss_bound` of f32's
/// (relative), and each parameter's change over them within `last_layer_bound` of f32's (in norm)
/// for the last layer, 25% below it.
fn steps_follow_f32(precision: Precision, loss_bound: f64, last_layer_bound: f64) {
    let (f32_losses, f32_changes) = run(Precision::F32, 3);
    let (low_losses, low_changes) = run(precision, 3);
    let name = precision.name();
    for (a, b) in f32_losses.iter().zip(&low_losses) {
        assert!((a - b).abs() <= loss_bound * a.abs(), "f32 losses {f32_losses:?}, {name} {low_losses:?}");
    }
    assert_ne!(f32_losses, low_losses, "the {name} step rounds to {name}, not only computes in f32");
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    for ((param, a), (_, b)) in f32_changes.iter().zip(&low_changes) {
        let (diff, scale) = (norm(&mut a.iter().zip(b).map(|(x, y)| x - y)), norm(&mut a.iter().copied()));
        assert!(scale > 0.0, "{param} moved");
        let bound = if param.starts_with("fc4.") { last_layer_bound } else { 0.25 };
        assert!(
            diff <= bound * scale,
            "{param}: the {name} change differs from the f32 one by {:.3}%",
            100.0 * diff / scale
        );
    }
}

#[test]
fn bf16_steps_follow_the_f32_steps_within_bf16_precision() {
    // The loss is an f32 sum over bf16 logits (8 bits of mantissa: a relative step of 2^-8):
    // within 0.5% of the f32 step's, step after step. Each parameter's change over the three
    // steps against the f32 step's, in norm: the last layer's gradient is its input times the
    // loss gradient, both rounded once: within 1%. Below it, a ReLU mask or a max-pooling argmax
    // flips where bf16 rounds an activation across its threshold, and a flipped unit routes its
    // whole gradient elsewhere: measured 4-15% on the layers below (one to three flips in a
    // thousand units), bounded at 25%.
    steps_follow_f32(Precision::Bf16, 0.005, 0.01);
}

#[test]
fn tiny_trained_in_bf16_reaches_the_f32_validation_top1_within_a_point() {
    let mut top1 = Vec::new();
    for precision in [Precision::F32, Precision::Bf16] {
        let plan = tiny(precision, 32);
        let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
        let shape = exec.input_shape();
        let (train_set, val_set) =
            (Synthetic::new(shape, 10, 1024, 7, "train"), Synthetic::new(shape, 10, 256, 7, "val"));
        let cfg = TrainConfig {
            epochs: 3,
            max_steps_per_epoch: None,
            batch_size: 32,
            loader: Loader::default(),
            checkpoint_dir: None,
            checkpoint_every: None,
            stats: None,
        };
        let start = Progress::start(&exec.graph.spec);
        let records = train(&mut exec, &train_set, &val_set, &cfg, start, |_| {}).unwrap().records;
        top1.push(records.last().unwrap().val.top1);
    }
    eprintln!("validation top-1 after 3 epochs: f32 {:.4}, bf16 {:.4}", top1[0], top1[1]);
    assert!(top1[0] > 0.6, "f32 learns: {top1:?}");
    assert!(top1[1] >= top1[0] - 0.01, "bf16 within a point of f32: {top1:?}");
}

#[test]
fn f16_steps_follow_the_f32_steps_within_f16_precision() {
    // f16 keeps 11 bits of mantissa (bf16 8): the loss within 0.1% of the f32 step's; the
    // unscaled gradients against f32's as for bf16 (flipped ReLU and pooling units below the last
    // layer), the last layer's bound a quarter of bf16's.
    steps_follow_f32(Precision::F16, 0.001, 0.0025);
}

#[test]
fn an_f16_step_whose_scaled_gradients_overflow_is_skipped_whole_and_halves_the_scale() {
    let plan = tiny(Precision::F16, 16);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    assert_eq!(exec.loss_scale(), Some([65536.0, 0.0, 0.0]), "PyTorch's initial scale");
    let persistent = |exec: &Executor<Cpu>| {
        exec.persistent_names()
            .into_iter()
            .filter(|(n, _)| n != "loss_scale")
            .map(|(n, _)| (n.clone(), exec.persistent_values(&n).unwrap().unwrap()))
            .collect::<Vec<_>>()
    };
    // The injected overflow: a scale of 2^40 takes the scaled loss gradient past f16's 65504.
    let huge = 2f32.powi(40);
    exec.set_persistent("loss_scale", vec![huge, 5.0, 0.0]).unwrap();
    let before = persistent(&exec);
    let loss = exec.step(batch(&exec, 0), 0.01).unwrap().loss.unwrap();
    assert!(loss.is_finite(), "the loss itself is f32 and finite: {loss}");
    assert_eq!(
        exec.loss_scale(),
        Some([huge / 2.0, 0.0, 1.0]),
        "halved, the good steps reset, one skip counted"
    );
    assert!(persistent(&exec) == before, "no parameter or momentum moved in the skipped step");

    // With the scale back in range, the next step updates every parameter.
    exec.set_persistent("loss_scale", vec![1024.0, 0.0, 1.0]).unwrap();
    exec.step(batch(&exec, 1), 0.01).unwrap();
    assert_eq!(exec.loss_scale(), Some([1024.0, 1.0, 1.0]));
    for ((name, after), (_, was)) in persistent(&exec).iter().zip(&before) {
        assert!(after != was, "{name} moved in the good step");
    }
}

#[test]
fn the_f16_scale_doubles_after_the_growth_interval_and_a_checkpoint_keeps_it() {
    let plan = tiny(Precision::F16, 16);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let interval = alexc::catalog::GROWTH_INTERVAL as f32;
    exec.set_persistent("loss_scale", vec![1024.0, interval - 1.0, 3.0]).unwrap();
    exec.step(batch(&exec, 0), 0.01).unwrap();
    assert_eq!(exec.loss_scale(), Some([2048.0, 0.0, 3.0]), "doubled after {interval} good steps");

    let dir = std::env::temp_dir().join(format!("alexrt-f16-checkpoint-{}", std::process::id()));
    let data = alexrt::checkpoint::RunData { classes: &[], stats: None, train_images: 16, batch_size: 16 };
    alexrt::checkpoint::save(&exec, &dir, &Progress::start(&exec.graph.spec), &data).unwrap();
    let mut resumed = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    alexrt::checkpoint::resume(&mut resumed, &dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        resumed.loss_scale(),
        Some([2048.0, 0.0, 3.0]),
        "the scale and counts come back with --resume"
    );
}
