//! Parity with PyTorch, shared by parity_f32.rs and parity_f64.rs: the same networks, the same
//! inputs and parameters (from a formula both sides compute), compared on logits, loss, every
//! parameter's gradient, and the parameters after three SGD steps with dropout off. The
//! references come from `scripts/pytorch_reference.py` in float64 (see tests/fixtures/README.md).

use alexc::ir::Mode;
use alexc::plan::Plan;
use alexrt::exec::{Batch, Executor};
use alexrt::Cpu;
use serde_json::Value as Json;

pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn name_seed(name: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64; // FNV-1a
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The formula of scripts/pytorch_reference.py: `scale * u`, `u` uniform in [-1, 1) from
/// SplitMix64 of (name, index), rounded to f32. Integer arithmetic: exact on both sides.
pub fn formula(name: &str, n: usize, scale: f64) -> Vec<f32> {
    let seed = name_seed(name);
    (0..n as u64)
        .map(|i| {
            let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(seed);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            (scale * u) as f32
        })
        .collect()
}

fn compile(graph: &str, batch: usize) -> Plan {
    let checked = alexc::front_end(&root().join(graph), &mut |_, _, _| {}).unwrap();
    let lowered = alexc::lower(&checked, Mode::Train, batch, &mut |_, _, _| {}).unwrap();
    lowered.into_plan(Mode::Train, graph)
}

fn floats(j: &Json) -> Vec<f64> {
    j.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

/// Compares `ours` (the whole tensor) with a fixture summary: sampled values within `rtol` of
/// the largest sampled magnitude, and the sum, absolute sum and sum of squares within `rtol`.
/// Mismatches are collected in `fails`.
fn compare(what: &str, ours: &[f64], reference: &Json, rtol: f64, fails: &mut Vec<String>) {
    let idx: Vec<usize> =
        reference["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let want = floats(&reference["values"]);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    for (i, w) in idx.iter().zip(&want) {
        let err = (ours[*i] - w).abs() / scale;
        if err > rtol {
            fails.push(format!(
                "{what}[{i}]: {} vs PyTorch {w} (relative error {err:.2e} > {rtol:.0e})",
                ours[*i]
            ));
            return;
        }
    }
    let abs_sum: f64 = ours.iter().map(|v| v.abs()).sum();
    let sq_sum: f64 = ours.iter().map(|v| v * v).sum();
    let sum: f64 = ours.iter().sum();
    let (ref_abs, ref_sq, ref_sum) = (
        reference["abs_sum"].as_f64().unwrap(),
        reference["sq_sum"].as_f64().unwrap(),
        reference["sum"].as_f64().unwrap(),
    );
    if (abs_sum - ref_abs).abs() > rtol * ref_abs {
        fails.push(format!("{what}: sum |x| {abs_sum} vs PyTorch {ref_abs}"));
    }
    if (sq_sum - ref_sq).abs() > 2.0 * rtol * ref_sq {
        fails.push(format!("{what}: sum x^2 {sq_sum} vs PyTorch {ref_sq}"));
    }
    if (sum - ref_sum).abs() > rtol * ref_abs {
        fails.push(format!("{what}: sum {sum} vs PyTorch {ref_sum}"));
    }
}

/// Runs `graph` as the fixture describes and compares; `rtol` is the relative error allowed.
pub fn parity(graph: &str, fixture: &str, rtol: f64) {
    let fx: Json = serde_json::from_str(&std::fs::read_to_string(root().join(fixture)).unwrap()).unwrap();
    let batch = fx["batch"].as_u64().unwrap() as usize;
    let plan = compile(graph, batch);
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    exec.options.dropout = false;
    exec.options.capture_gradients = true;

    let mut initial = std::collections::HashMap::new();
    for (name, n) in exec.param_names() {
        let alexc::catalog::Op::Param(p) = &plan.graph.g[n].op else { unreachable!() };
        let scale = match p.role {
            alexc::catalog::ParamRole::Weight => 1.0 / (p.fan_in as f64).sqrt(),
            alexc::catalog::ParamRole::Bias => 0.1,
        };
        let values = formula(&name, p.shape.iter().product(), scale);
        exec.set_persistent(&name, values.clone()).unwrap();
        initial.insert(name, values);
    }
    let [c, h, w] = exec.input_shape();
    let classes = exec.classes();
    let data = Batch {
        images: formula("input", batch * c * h * w, 1.0),
        labels: (0..batch).map(|i| ((3 * i + 1) % classes) as i32).collect(),
    };
    let lr = match plan.graph.spec.optimizer {
        alexc::ir::Optimizer::Sgd { lr, .. } => lr,
    };

    let exec_is_f64 = burn::tensor::get_device_settings::<Cpu>(&Default::default()).float_dtype
        == burn::tensor::FloatDType::F64;
    let first = exec.step(&data, lr).unwrap();
    let logits: Vec<f64> = first.logits.clone();
    let want_logits = floats(&fx["logits"]);
    let scale = want_logits.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in logits.iter().zip(&want_logits).enumerate() {
        assert!((a - b).abs() <= rtol * scale, "logits[{i}]: {a} vs PyTorch {b}");
    }
    let loss = first.loss.unwrap();
    let want_loss = fx["loss"].as_f64().unwrap();
    assert!((loss - want_loss).abs() <= rtol * want_loss.abs(), "loss {loss} vs PyTorch {want_loss}");
    let grads = fx["grads"].as_object().unwrap();
    assert_eq!(grads.len(), first.gradients.len(), "one gradient per parameter");
    let mut fails = Vec::new();
    for (name, reference) in grads {
        compare(&format!("grad {name}"), &first.gradients[name], reference, rtol, &mut fails);
    }
    assert!(fails.is_empty(), "gradients differ from PyTorch's:\n{}", fails.join("\n"));

    let mut losses = vec![loss];
    for _ in 1..fx["steps"].as_u64().unwrap() {
        losses.push(exec.step(&data, lr).unwrap().loss.unwrap());
    }
    for (i, (a, b)) in losses.iter().zip(floats(&fx["losses"])).enumerate() {
        assert!((a - b).abs() <= rtol * b.abs(), "loss after {i} steps: {a} vs PyTorch {b}");
    }
    // Parameters after the steps, compared as the change from the start (the start is exact).
    for (name, reference) in fx["params_after"].as_object().unwrap() {
        let ours = exec.persistent_values_f64(name).unwrap().unwrap();
        let start = &initial[name];
        let delta: Vec<f64> = ours.iter().zip(start).map(|(a, s)| a - *s as f64).collect();
        let idx: Vec<usize> =
            reference["indices"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let want: Vec<f64> =
            floats(&reference["values"]).iter().zip(&idx).map(|(v, i)| v - start[*i] as f64).collect();
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
        for (i, wv) in idx.iter().zip(&want) {
            // The change is a difference of nearby values of the device's precision: allow a
            // few units in the last place of the weight on top of `rtol`.
            let ulp = if exec_is_f64 { f64::EPSILON } else { f32::EPSILON as f64 };
            let allowed = rtol * scale + 4.0 * ulp * (start[*i] as f64).abs();
            let err = (delta[*i] - wv).abs();
            assert!(
                err <= allowed,
                "{name}[{i}] moved {} vs PyTorch {wv} (error {err:.2e} > {allowed:.2e})",
                delta[*i]
            );
        }
    }
}
