//! Every gradient rule of the compiler, executed by the runtime, against finite differences of the
//! loss in f64: small graphs that use each op, the gradient of every parameter checked at sampled
//! entries. (This test binary sets the CPU device to f64 before creating any tensor.)

use alexc::ir::Mode;
use alexc::plan::Plan;
use alexrt::exec::{Batch, Executor};
use alexrt::init::Rng;
use alexrt::Cpu;

fn plan(nodes: &str, input: [usize; 3], classes: usize, batch: usize) -> Plan {
    let [c, h, w] = input;
    let text = format!(
        "Graph(name: \"grad\", input: (name: \"x\", channels: {c}, height: {h}, width: {w}), classes: {classes},
          defaults: (weight: (init: Normal(mean: 0.0, std: 0.3)), bias: (init: Uniform(low: -0.2, high: 0.2))),
          nodes: [{nodes}], loss: SoftmaxCrossEntropy(logits: \"out\"),
          optimizer: Sgd(lr: 1.0), training: (batch_size: {batch}, epochs: 1, seed: 3))"
    );
    let checked =
        alexc::front_end_str(&text, "grad.ron", &mut |_, _, _| {}).unwrap_or_else(|d| panic!("{d}"));
    let lowered = alexc::lower(&checked, Mode::Train, batch, &mut |_, _, _| {}).unwrap();
    lowered.into_plan(Mode::Train, "grad.ron")
}

fn use_f64() {
    let device = Default::default();
    // Ignore "already initialised": every test in this binary asks for the same.
    let _ = burn::tensor::backend::set_default_float_dtype::<Cpu>(&device, burn::tensor::DType::F64);
}

/// The loss at the executor's current parameters, without changing them.
fn loss_at(exec: &mut Executor<Cpu>, batch: &Batch, names: &[String], saved: &[Vec<f64>]) -> f64 {
    let step = exec.steps_done;
    let out = exec.step(batch, 1.0).unwrap();
    exec.steps_done = step; // the same dropout masks next time
    for (n, v) in names.iter().zip(saved) {
        exec.set_persistent(n, v.clone()).unwrap();
    }
    out.loss.unwrap()
}

fn check(nodes: &str, input: [usize; 3], classes: usize, batch: usize, dropout: bool) {
    use_f64();
    let plan = plan(nodes, input, classes, batch);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    exec.options.capture_gradients = true;
    exec.options.dropout = dropout;
    let mut rng = Rng::new(11);
    let per_image: usize = input.iter().product();
    let data = Batch {
        images: (0..batch * per_image).map(|_| rng.normal() as f32).collect(),
        labels: (0..batch).map(|i| (i % classes) as i32).collect(),
    };
    let names: Vec<String> = exec.param_names().into_iter().map(|(n, _)| n).collect();
    let params: Vec<Vec<f64>> =
        names.iter().map(|n| exec.persistent_values_f64(n).unwrap().unwrap()).collect();
    let out = exec.step(&data, 1.0).unwrap();
    exec.steps_done = 0;
    for (n, v) in names.iter().zip(&params) {
        exec.set_persistent(n, v.clone()).unwrap();
    }
    assert!(out.loss.unwrap().is_finite());
    let h = 1e-5;
    for (p, name) in names.iter().enumerate() {
        let grad = &out.gradients[name];
        assert_eq!(grad.len(), params[p].len(), "{name}");
        let picks: Vec<usize> = (0..6).map(|_| rng.below(grad.len())).collect();
        for i in picks {
            let mut plus = params.clone();
            plus[p][i] += h;
            exec.set_persistent(name, plus[p].clone()).unwrap();
            let lp = loss_at(&mut exec, &data, &names, &params);
            let mut minus = params.clone();
            minus[p][i] -= h;
            exec.set_persistent(name, minus[p].clone()).unwrap();
            let lm = loss_at(&mut exec, &data, &names, &params);
            exec.set_persistent(name, params[p].clone()).unwrap();
            let numeric = (lp - lm) / (2.0 * h);
            let err = (numeric - grad[i]).abs();
            assert!(
                err <= 1e-6 + 1e-4 * numeric.abs(),
                "{name}[{i}]: analytic {} vs numeric {numeric} ({nodes})",
                grad[i]
            );
        }
    }
}

#[test]
fn conv_groups_stride_padding_relu_lrn_paper_overlapping_pool() {
    check(
        r#"(name: "conv", op: Conv2d(out_channels: 4, kernel: 3, stride: 2, padding: 1, groups: 2), inputs: ["x"]),
           (name: "relu", op: Relu, inputs: ["conv"]),
           (name: "norm", op: Lrn(size: 3, alpha: 0.5, beta: 0.75, k: 1.0, convention: Paper), inputs: ["relu"]),
           (name: "pool", op: MaxPool(kernel: 3, stride: 2), inputs: ["norm"]),
           (name: "flat", op: Flatten, inputs: ["pool"]),
           (name: "out", op: Linear(out_features: 3), inputs: ["flat"])"#,
        [2, 9, 9],
        3,
        2,
        true,
    );
}

#[test]
fn lrn_caffe_padded_pool_residual_add_and_dropout() {
    check(
        r#"(name: "conv", op: Conv2d(out_channels: 3, kernel: 3, padding: 1), inputs: ["x"]),
           (name: "norm", op: Lrn(size: 5, alpha: 2.0, beta: 0.6, k: 2.0, convention: Caffe), inputs: ["conv"]),
           (name: "branch", op: Conv2d(out_channels: 3, kernel: 1), inputs: ["norm"]),
           (name: "sum", op: Add, inputs: ["branch", "norm"]),
           (name: "pool", op: MaxPool(kernel: 3, stride: 2, padding: 1), inputs: ["sum"]),
           (name: "flat", op: Flatten, inputs: ["pool"]),
           (name: "drop", op: Dropout(rate: 0.5), inputs: ["flat"]),
           (name: "out", op: Linear(out_features: 4), inputs: ["drop"])"#,
        [3, 6, 6],
        4,
        3,
        true,
    );
}

#[test]
fn fully_connected_relu_dropout_without_bias() {
    check(
        r#"(name: "flat", op: Flatten, inputs: ["x"]),
           (name: "fc1", op: Linear(out_features: 6), inputs: ["flat"]),
           (name: "relu1", op: Relu, inputs: ["fc1"]),
           (name: "drop1", op: Dropout(rate: 0.3), inputs: ["relu1"]),
           (name: "out", op: Linear(out_features: 3, use_bias: false), inputs: ["drop1"])"#,
        [1, 3, 3],
        3,
        4,
        true,
    );
}
