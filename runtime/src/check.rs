//! `alexrt check-kernels`: a backend's kernels against the CPU (the reference kernels, and burn
//! Flex running the trait's defaults) on odd shapes, then timings at AlexNet's shapes: LRN and
//! pooling against the copy bandwidth measured first, the fused conv1 tail (bias + ReLU + LRN,
//! and its gradient) against the same work unfused, and each grouped convolution (conv2, conv4,
//! conv5) against the same layer split into two convolutions. The GPU script runs it on CUDA.

use std::time::Instant;

use alexir::catalog::ConvAttrs;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::conv2d;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use serde_json::{json, Map, Value};

use crate::init::Rng;
use crate::kernels::{conv_options, reference, KernelBackend, LrnParams, PoolParams, SgdParams};
use crate::{Cpu, RunError};

/// What to check and how long to time.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Batch of the timed tensors.
    pub batch: usize,
    /// Timed repetitions (after one warm-up).
    pub steps: usize,
    /// Time the grouped convolutions against their split (slow where burn's convolution is, as on
    /// lavapipe).
    pub conv: bool,
}

/// The largest error relative to `1 + |reference|` that passes.
pub const TOLERANCE: f64 = 1e-4;

fn max_err(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    // A NaN where the reference has a number is as wrong as it gets.
    let err = |x: f32, y: f32| match ((x - y).abs() / (1.0 + y.abs())) as f64 {
        e if e.is_nan() && !y.is_nan() => f64::INFINITY,
        e if e.is_nan() => 0.0,
        e => e,
    };
    a.iter().zip(b).map(|(x, y)| err(*x, *y)).fold(0.0, f64::max)
}

fn put<B: Backend, const D: usize>(v: &[f32], dims: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), dims), device)
}

fn get<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap_or_default()
}

fn normal(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// Each kernel's largest relative error at one shape, against the CPU.
fn errors_at<B: KernelBackend>(shape: [usize; 4], rng: &mut Rng, device: &B::Device) -> Map<String, Value> {
    let cpu = Default::default();
    let lrn = LrnParams { size: 5, scale: 1e-4, beta: 0.75, k: 2.0 };
    let pool = PoolParams { kernel: 3, stride: 2, padding: 0 };
    let n: usize = shape.iter().product();
    let (x, dy, bias) = (normal(rng, n), normal(rng, n), normal(rng, shape[1]));
    let ry: Vec<f32> = normal(rng, n).into_iter().map(|v| v.max(0.0)).collect();
    let keep: Vec<bool> = normal(rng, n).iter().map(|v| *v > 0.0).collect();
    let d = |v: &[f32]| put::<B, 4>(v, shape, device);
    let c = |v: &[f32]| put::<Cpu, 4>(v, shape, &cpu);
    let mut e = Map::new();

    let y_ref = reference::lrn_forward(&x, shape, &lrn);
    e.insert("lrn_forward".into(), max_err(&get(B::lrn_forward(d(&x), &lrn)), &y_ref).into());
    let dx_ref = reference::lrn_backward(&x, &y_ref, &dy, shape, &lrn);
    e.insert(
        "lrn_backward".into(),
        max_err(&get(B::lrn_backward(d(&x), d(&y_ref), d(&dy), &lrn)), &dx_ref).into(),
    );

    let (p_ref, a_ref) = reference::max_pool_forward(&x, shape, &pool);
    let (p, a) = B::max_pool_forward(d(&x), &pool);
    let out = [shape[0], shape[1], reference::pooled(shape[2], &pool), reference::pooled(shape[3], &pool)];
    let a_host: Vec<i32> = a.clone().into_data().convert::<i32>().into_vec::<i32>().unwrap_or_default();
    e.insert(
        "pool_forward".into(),
        (max_err(&get(p), &p_ref) + if a_host == a_ref { 0.0 } else { 1.0 }).into(),
    );
    let g = normal(rng, p_ref.len());
    let dx_ref = reference::max_pool_backward(&g, &a_ref, [shape[2], shape[3]], [out[2], out[3]], &pool);
    let dx = B::max_pool_backward(put(&g, out, device), a, [shape[2], shape[3]], &pool);
    e.insert("pool_backward".into(), max_err(&get(dx), &dx_ref).into());

    // The fused kernels against the CPU backend running the trait's defaults.
    let (bd, bc) = (put::<B, 1>(&bias, [shape[1]], device), put::<Cpu, 1>(&bias, [shape[1]], &cpu));
    let want = get(Cpu::bias_act(c(&x), bc.clone(), true));
    e.insert("bias_relu".into(), max_err(&get(B::bias_act(d(&x), bd.clone(), true)), &want).into());
    let (y, r) = B::bias_relu_lrn(d(&x), bd, &lrn, true);
    let (y_want, r_want) = Cpu::bias_relu_lrn(c(&x), bc, &lrn, true);
    let err =
        max_err(&get(y), &get(y_want)).max(max_err(&get(r.expect("kept")), &get(r_want.expect("kept"))));
    e.insert("bias_relu_lrn".into(), err.into());
    let y = reference::lrn_forward(&ry, shape, &lrn);
    let got = get(B::lrn_relu_backward(d(&ry), d(&y), d(&dy), &lrn));
    let want = get(Cpu::lrn_relu_backward(c(&ry), c(&y), c(&dy), &lrn));
    e.insert("lrn_relu_backward".into(), max_err(&got, &want).into());
    let (_, arg) = reference::max_pool_forward(&ry, shape, &pool);
    let arg_d = Tensor::<B, 4, Int>::from_data(TensorData::new(arg.clone(), out), device);
    let arg_c = Tensor::<Cpu, 4, Int>::from_data(TensorData::new(arg, out), &cpu);
    let got = get(B::max_pool_relu_backward(put(&g, out, device), arg_d, d(&ry), &pool));
    let want = get(Cpu::max_pool_relu_backward(put(&g, out, &cpu), arg_c, c(&ry), &pool));
    e.insert("pool_relu_backward".into(), max_err(&got, &want).into());
    let mask_d = Tensor::<B, 4, Bool>::from_data(TensorData::new(keep.clone(), shape), device);
    let mask_c = Tensor::<Cpu, 4, Bool>::from_data(TensorData::new(keep, shape), &cpu);
    let got = get(B::masked_grad(d(&dy), Some(d(&ry)), Some((mask_d, 2.0))));
    let want = get(Cpu::masked_grad(c(&dy), Some(c(&ry)), Some((mask_c, 2.0))));
    e.insert("dropout_relu_grad".into(), max_err(&got, &want).into());

    let sgd = SgdParams { momentum: 0.9, rate: 0.01, decay: 5e-4 };
    let (mut w_ref, mut v_ref) = (x.clone(), dy.clone());
    reference::sgd_update::<f32>(&mut w_ref, &ry, &mut v_ref, &sgd);
    let (w, v) = B::sgd_update(d(&x), d(&ry), d(&dy), &sgd);
    e.insert("sgd_update".into(), max_err(&get(w), &w_ref).max(max_err(&get(v), &v_ref)).into());
    e
}

/// Seconds per call of `f`, after one warm-up call, waiting for the device each time.
fn time<T>(steps: usize, mut f: impl FnMut() -> T, sync: impl Fn(&T)) -> f64 {
    sync(&f());
    let t = Instant::now();
    for _ in 0..steps.max(1) {
        sync(&f());
    }
    t.elapsed().as_secs_f64() / steps.max(1) as f64
}

fn sync4<B: Backend>(t: &Tensor<B, 4>) {
    let _ = t.clone().slice([0..1, 0..1, 0..1, 0..1]).into_data();
}

/// A deterministic tensor of `dims` with values in [-1, 1).
fn pattern<B: Backend, const D: usize>(dims: [usize; D], device: &B::Device) -> Tensor<B, D> {
    let n: usize = dims.iter().product();
    put(&(0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect::<Vec<_>>(), dims, device)
}

/// Milliseconds of the LRN and pooling kernels and the fused conv1 tail, at conv1's output.
fn kernel_times<B: KernelBackend>(o: &CheckOptions, device: &B::Device) -> Value {
    let lrn = LrnParams { size: 5, scale: 1e-4, beta: 0.75, k: 2.0 };
    let pool = PoolParams { kernel: 3, stride: 2, padding: 0 };
    let shape = [o.batch, 96, 55, 55];
    let x = pattern::<B, 4>(shape, device);
    let bias = pattern::<B, 1>([96], device);
    let s = o.steps;
    let y = B::lrn_forward(x.clone(), &lrn);
    let (py, pa) = B::max_pool_forward(y.clone(), &pool);
    let ms = |t: f64| t * 1e3;
    let copy = time(s, || x.clone() * 1.0, sync4);
    let mut t = Map::new();
    t.insert("copy".into(), ms(copy).into());
    t.insert("lrn_forward".into(), ms(time(s, || B::lrn_forward(x.clone(), &lrn), sync4)).into());
    t.insert(
        "lrn_backward".into(),
        ms(time(s, || B::lrn_backward(x.clone(), y.clone(), y.clone(), &lrn), sync4)).into(),
    );
    t.insert("pool_forward".into(), ms(time(s, || B::max_pool_forward(y.clone(), &pool).0, sync4)).into());
    t.insert(
        "pool_backward".into(),
        ms(time(s, || B::max_pool_backward(py.clone(), pa.clone(), [55, 55], &pool), sync4)).into(),
    );
    // conv1's tail as an eager framework runs it (bias add, ReLU, LRN: three passes) and fused.
    let tail_unfused = || {
        let r = relu(x.clone() + bias.clone().reshape([1, 96, 1, 1]));
        (B::lrn_forward(r.clone(), &lrn), r)
    };
    t.insert("tail_forward_unfused".into(), ms(time(s, tail_unfused, |p| sync4(&p.0))).into());
    let tail_fused = || B::bias_relu_lrn(x.clone(), bias.clone(), &lrn, true).0;
    t.insert("tail_forward_fused".into(), ms(time(s, tail_fused, sync4)).into());
    let r = relu(x.clone());
    let back_unfused = || {
        let dx = B::lrn_backward(r.clone(), y.clone(), y.clone(), &lrn);
        dx.mask_fill(r.clone().lower_equal_elem(0.0), 0.0)
    };
    t.insert("tail_backward_unfused".into(), ms(time(s, back_unfused, sync4)).into());
    let back_fused = || B::lrn_relu_backward(r.clone(), y.clone(), y.clone(), &lrn);
    t.insert("tail_backward_fused".into(), ms(time(s, back_fused, sync4)).into());
    let bytes = (o.batch * 96 * 55 * 55 * 4) as f64;
    let pooled = bytes * 27.0 * 27.0 / (55.0 * 55.0);
    let gbps = |moved: f64, key: &str| moved / (t[key].as_f64().unwrap_or(f64::NAN) / 1e3) / 1e9;
    // The fewest bytes each must move: LRN forward reads x and writes y; backward reads x, y, dy
    // and writes dx; pooling forward reads x and writes y and argmax; backward reads dy and
    // argmax and writes dx.
    json!({
        "shape": shape,
        "ms": t,
        "copy_gbps": 2.0 * bytes / copy / 1e9,
        "gbps": {
            "lrn_forward": gbps(2.0 * bytes, "lrn_forward"),
            "lrn_backward": gbps(4.0 * bytes, "lrn_backward"),
            "pool_forward": gbps(bytes + 2.0 * pooled, "pool_forward"),
            "pool_backward": gbps(2.0 * pooled + bytes, "pool_backward"),
        },
    })
}

/// A grouped convolution's forward, data gradient and weight gradient, grouped and split in two.
fn conv_times<B: KernelBackend>(o: &CheckOptions, device: &B::Device) -> Value {
    let mut layers = Map::new();
    // (name, input channels, size, output channels, kernel, padding), AlexNet's grouped layers.
    for (name, cin, hw, cout, k, pad) in
        [("conv2", 96, 27, 256, 5, 2), ("conv4", 384, 13, 384, 3, 1), ("conv5", 384, 13, 256, 3, 1)]
    {
        let attrs =
            ConvAttrs { out_channels: cout, kernel: k, stride: 1, padding: pad, groups: 2, algo: None };
        let one = ConvAttrs { groups: 1, out_channels: cout / 2, ..attrs };
        let x = pattern::<B, 4>([o.batch, cin, hw, hw], device);
        let w = pattern::<B, 4>([cout, cin / 2, k, k], device);
        let dy = pattern::<B, 4>([o.batch, cout, hw, hw], device);
        let halves = |t: &Tensor<B, 4>, dim: usize| {
            let c = t.dims()[dim] / 2;
            [t.clone().narrow(dim, 0, c), t.clone().narrow(dim, c, c)]
        };
        let (xs, ws, dys) = (halves(&x, 1), halves(&w, 0), halves(&dy, 1));
        let s = o.steps;
        let ms = |t: f64| t * 1e3;
        let fwd_g = time(s, || conv2d(x.clone(), w.clone(), None, conv_options(&attrs)), sync4);
        let fwd_s = time(
            s,
            || {
                let parts = (0..2).map(|i| conv2d(xs[i].clone(), ws[i].clone(), None, conv_options(&one)));
                Tensor::cat(parts.collect(), 1)
            },
            sync4,
        );
        let data_g = time(s, || B::conv2d_data_grad(dy.clone(), w.clone(), &attrs, [hw, hw]), sync4);
        let data_s = time(
            s,
            || {
                let parts =
                    (0..2).map(|i| B::conv2d_data_grad(dys[i].clone(), ws[i].clone(), &one, [hw, hw]));
                Tensor::cat(parts.collect(), 1)
            },
            sync4,
        );
        let weight_g = time(s, || B::conv2d_weight_grad(x.clone(), dy.clone(), &attrs), sync4);
        let weight_s = time(
            s,
            || {
                let parts = (0..2).map(|i| B::conv2d_weight_grad(xs[i].clone(), dys[i].clone(), &one));
                Tensor::cat(parts.collect(), 0)
            },
            sync4,
        );
        layers.insert(
            name.into(),
            json!({
                "grouped_ms": {"forward": ms(fwd_g), "data_grad": ms(data_g), "weight_grad": ms(weight_g)},
                "split_ms": {"forward": ms(fwd_s), "data_grad": ms(data_s), "weight_grad": ms(weight_s)},
                "split_speedup": (fwd_g + data_g + weight_g) / (fwd_s + data_s + weight_s),
            }),
        );
    }
    Value::Object(layers)
}

/// Checks every kernel on `device`, then times them; the report is JSON. An error above
/// [`TOLERANCE`] is returned as a failure after the report is built.
pub fn check_kernels<B: KernelBackend>(
    o: &CheckOptions,
    device: &B::Device,
) -> (Value, Result<(), RunError>) {
    let mut rng = Rng::new(5);
    let mut errors = Map::new();
    for shape in [[1usize, 3, 5, 7], [2, 7, 9, 11], [3, 96, 13, 13]] {
        errors.insert(format!("{shape:?}"), Value::Object(errors_at::<B>(shape, &mut rng, device)));
    }
    let worst = errors
        .values()
        .flat_map(|v| v.as_object().into_iter().flat_map(|m| m.values().map(|e| e.as_f64().unwrap_or(1.0))))
        .fold(0.0f64, f64::max);
    let mut report =
        json!({"device": format!("{device:?}"), "max_relative_error": errors, "worst_error": worst});
    let times = kernel_times::<B>(o, device);
    for (k, v) in times.as_object().into_iter().flatten() {
        report[k] = v.clone();
    }
    if o.conv {
        report["grouped_conv"] = conv_times::<B>(o, device);
    }
    let verdict = if worst > TOLERANCE {
        Err(RunError::Input(format!("kernel check failed: relative error {worst:.2e} > {TOLERANCE:.0e}")))
    } else {
        Ok(())
    };
    (report, verdict)
}
