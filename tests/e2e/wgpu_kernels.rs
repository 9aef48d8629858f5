//! The CubeCL kernels on wgpu, against the reference CPU kernels on random inputs: odd sizes,
//! batch 1, fewer channels than the LRN window, padding, windows whose maximum ties, and the
//! gradients; the fused epilogues and the SGD update against the CPU backend's (the trait's
//! defaults), on contiguous and NHWC-strided inputs; then a whole training step of the small net on
//! wgpu against the CPU step.
//!
//! Without a GPU this runs on Mesa's lavapipe ([`vulkan`] says when it skips). The same kernels in
//! f16: `wgpu_f16.rs`.

#[path = "common/vulkan.rs"]
mod vulkan;

use alexrt::init::Rng;
use alexrt::kernels::{reference, KernelBackend, LrnParams, PoolParams, SgdParams};
use alexrt::{Cpu, Wgpu};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use vulkan::{device, vulkan};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn gpu(v: &[f32], dims: [usize; 4]) -> Tensor<Wgpu, 4> {
    Tensor::from_data(TensorData::new(v.to_vec(), dims), &device())
}

fn host(t: Tensor<Wgpu, 4>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}[{i}]: wgpu {x} vs reference {y}");
    }
}

/// Odd sizes, batch 1, fewer channels than the LRN window, and more channels than one LRN unit
/// walks (32), ending mid-run.
const SHAPES: [[usize; 4]; 6] =
    [[1, 3, 5, 7], [2, 7, 4, 3], [1, 2, 3, 3], [3, 5, 6, 6], [1, 37, 3, 3], [2, 70, 2, 3]];

#[test]
fn lrn_forward_and_backward_match_the_reference() {
    if !vulkan() {
        return;
    }
    let paper = LrnParams { size: 5, scale: 1e-4, beta: 0.75, k: 2.0 };
    let strong = LrnParams { size: 3, scale: 0.5 / 3.0, beta: 0.6, k: 1.0 };
    for (s, shape) in SHAPES.iter().enumerate() {
        for p in [paper, strong] {
            let n: usize = shape.iter().product();
            let (x, dy) = (random(n, s as u64), random(n, 100 + s as u64));
            let y_ref = reference::lrn_forward(&x, *shape, &p);
            let y = host(Wgpu::lrn_forward(gpu(&x, *shape), &p));
            close(&y, &y_ref, 1e-5, &format!("lrn forward {shape:?}"));
            let dx_ref = reference::lrn_backward(&x, &y_ref, &dy, *shape, &p);
            let dx = host(Wgpu::lrn_backward(gpu(&x, *shape), gpu(&y_ref, *shape), gpu(&dy, *shape), &p));
            close(&dx, &dx_ref, 1e-5, &format!("lrn backward {shape:?}"));
        }
    }
}

#[test]
fn max_pool_forward_and_backward_match_the_reference() {
    if !vulkan() {
        return;
    }
    let pools = [
        PoolParams { kernel: 3, stride: 2, padding: 0 },
        PoolParams { kernel: 3, stride: 2, padding: 1 },
        PoolParams { kernel: 2, stride: 2, padding: 0 },
    ];
    let mut cases: Vec<([usize; 4], Vec<f32>)> = [[1, 1, 7, 7], [2, 3, 9, 8], [1, 2, 13, 11]]
        .iter()
        .map(|s| (*s, random(s.iter().product(), 7)))
        .collect();
    // Ties: a constant plane, and a maximum on the border shared by two windows.
    cases.push(([1, 1, 5, 5], vec![1.0; 25]));
    let mut border = vec![0.0; 25];
    border[2] = 5.0;
    cases.push(([1, 1, 5, 5], border));
    for (shape, x) in &cases {
        for p in &pools {
            let (y_ref, arg_ref) = reference::max_pool_forward(x, *shape, p);
            let (y, arg) = Wgpu::max_pool_forward(gpu(x, *shape), p);
            let arg_host: Vec<i32> = arg.clone().into_data().convert::<i32>().into_vec::<i32>().unwrap();
            assert_eq!(host(y.clone()), y_ref, "pool forward {shape:?} {p:?}");
            assert_eq!(arg_host, arg_ref, "argmax {shape:?} {p:?}");
            let out = [reference::pooled(shape[2], p), reference::pooled(shape[3], p)];
            let dy = random(y_ref.len(), 9);
            let dx_ref = reference::max_pool_backward(&dy, &arg_ref, [shape[2], shape[3]], out, p);
            let dy_gpu = gpu(&dy, [shape[0], shape[1], out[0], out[1]]);
            let arg_gpu: Tensor<Wgpu, 4, Int> = arg;
            let dx = host(Wgpu::max_pool_backward(dy_gpu, arg_gpu, [shape[2], shape[3]], p));
            close(&dx, &dx_ref, 1e-6, &format!("pool backward {shape:?} {p:?}"));
        }
    }
}

fn on<B: Backend, const D: usize>(v: &[f32], dims: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v.to_vec(), dims), device)
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
}

/// NCHW values stored NHWC, as burn's convolutions return them on CubeCL: a strided view.
fn gpu_nhwc(v: &[f32], [n, c, h, w]: [usize; 4]) -> Tensor<Wgpu, 4> {
    let mut nhwc = Vec::with_capacity(v.len());
    for b in 0..n {
        for i in 0..h {
            for j in 0..w {
                for k in 0..c {
                    nhwc.push(v[((b * c + k) * h + i) * w + j]);
                }
            }
        }
    }
    on::<Wgpu, 4>(&nhwc, [n, h, w, c], &device()).permute([0, 3, 1, 2])
}

fn relu_of(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| x.max(0.0)).collect()
}

#[test]
fn fused_epilogues_match_the_cpu_backend() {
    if !vulkan() {
        return;
    }
    let cpu = Default::default();
    let paper = LrnParams { size: 5, scale: 1e-4, beta: 0.75, k: 2.0 };
    let strong = LrnParams { size: 3, scale: 0.5 / 3.0, beta: 0.6, k: 1.0 };
    for (s, &shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let seed = 10 * s as u64;
        let (x, bias) = (random(n, seed), random(shape[1], seed + 1));
        let what = |w: &str| format!("{w} {shape:?}");
        for strided in [false, true] {
            let xg = || if strided { gpu_nhwc(&x, shape) } else { gpu(&x, shape) };
            let bg = || on::<Wgpu, 1>(&bias, [shape[1]], &device());
            let (xc, bc) = (on::<Cpu, 4>(&x, shape, &cpu), on::<Cpu, 1>(&bias, [shape[1]], &cpu));
            for relu in [false, true] {
                let want = values(Cpu::bias_act(xc.clone(), bc.clone(), relu));
                close(&host(Wgpu::bias_act(xg(), bg(), relu)), &want, 1e-6, &what("bias_act"));
            }
            for p in [paper, strong] {
                for keep in [false, true] {
                    let (y, r) = Wgpu::bias_relu_lrn(xg(), bg(), &p, keep);
                    let (y_want, r_want) = Cpu::bias_relu_lrn(xc.clone(), bc.clone(), &p, keep);
                    close(&host(y), &values(y_want), 1e-5, &what("bias_relu_lrn"));
                    assert_eq!(r.is_some(), keep);
                    if let (Some(r), Some(r_want)) = (r, r_want) {
                        close(&host(r), &values(r_want), 1e-6, &what("bias_relu_lrn relu"));
                    }
                }
            }
        }
        // Gradients through a ReLU: its output has exact zeros, as in a real step.
        let ry = relu_of(random(n, seed + 2));
        let dy = random(n, seed + 3);
        let keep: Vec<bool> = random(n, seed + 4).iter().map(|v| *v > 0.0).collect();
        for dropout in [false, true] {
            let mask_g = dropout.then(|| {
                (Tensor::<Wgpu, 4, Bool>::from_data(TensorData::new(keep.clone(), shape), &device()), 2.0)
            });
            let mask_c = dropout.then(|| {
                (Tensor::<Cpu, 4, Bool>::from_data(TensorData::new(keep.clone(), shape), &cpu), 2.0)
            });
            let got = host(Wgpu::masked_grad(gpu(&dy, shape), Some(gpu(&ry, shape)), mask_g));
            let want =
                values(Cpu::masked_grad(on::<Cpu, 4>(&dy, shape, &cpu), Some(on(&ry, shape, &cpu)), mask_c));
            close(&got, &want, 0.0, &what("masked_grad"));
        }
        for p in [paper, strong] {
            let y = reference::lrn_forward(&ry, shape, &p);
            let got = host(Wgpu::lrn_relu_backward(gpu(&ry, shape), gpu(&y, shape), gpu(&dy, shape), &p));
            let want = values(Cpu::lrn_relu_backward(
                on::<Cpu, 4>(&ry, shape, &cpu),
                on(&y, shape, &cpu),
                on(&dy, shape, &cpu),
                &p,
            ));
            close(&got, &want, 1e-5, &what("lrn_relu_backward"));
        }
        if shape[2] >= 3 && shape[3] >= 3 {
            let p = PoolParams { kernel: 3, stride: 2, padding: 0 };
            let (_, arg) = reference::max_pool_forward(&ry, shape, &p);
            let out = [shape[0], shape[1], reference::pooled(shape[2], &p), reference::pooled(shape[3], &p)];
            let g = random(out.iter().product(), seed + 5);
            let arg_g = Tensor::<Wgpu, 4, Int>::from_data(TensorData::new(arg.clone(), out), &device());
            let arg_c = Tensor::<Cpu, 4, Int>::from_data(TensorData::new(arg, out), &cpu);
            let got = host(Wgpu::max_pool_relu_backward(gpu(&g, out), arg_g, gpu(&ry, shape), &p));
            let want =
                values(Cpu::max_pool_relu_backward(on(&g, out, &cpu), arg_c, on(&ry, shape, &cpu), &p));
            close(&got, &want, 1e-6, &what("max_pool_relu_backward"));
        }
    }
    // Rank 2 (the fully connected layers), with the dropout mask.
    let (x, bias, y) = (random(15, 1), random(5, 2), relu_of(random(15, 3)));
    let keep: Vec<bool> = random(15, 4).iter().map(|v| *v > 0.0).collect();
    for relu in [false, true] {
        let got =
            values(Wgpu::bias_act(on::<Wgpu, 2>(&x, [3, 5], &device()), on(&bias, [5], &device()), relu));
        let want = values(Cpu::bias_act(on::<Cpu, 2>(&x, [3, 5], &cpu), on(&bias, [5], &cpu), relu));
        close(&got, &want, 1e-6, "bias_act rank 2");
    }
    for relu in [false, true] {
        let mask_g = Tensor::<Wgpu, 2, Bool>::from_data(TensorData::new(keep.clone(), [3, 5]), &device());
        let mask_c = Tensor::<Cpu, 2, Bool>::from_data(TensorData::new(keep.clone(), [3, 5]), &cpu);
        let got = values(Wgpu::masked_grad(
            on::<Wgpu, 2>(&x, [3, 5], &device()),
            relu.then(|| on(&y, [3, 5], &device())),
            Some((mask_g, 2.0)),
        ));
        let want = values(Cpu::masked_grad(
            on::<Cpu, 2>(&x, [3, 5], &cpu),
            relu.then(|| on(&y, [3, 5], &cpu)),
            Some((mask_c, 2.0)),
        ));
        close(&got, &want, 0.0, "masked_grad rank 2");
    }
}

#[test]
fn the_sgd_update_matches_the_reference_and_leaves_shared_tensors_alone() {
    if !vulkan() {
        return;
    }
    let p = SgdParams { momentum: 0.9, rate: 0.01, decay: 5e-4 };
    let (w, g, v) = (random(24, 1), random(24, 2), random(24, 3));
    let (mut w_ref, mut v_ref) = (w.clone(), v.clone());
    reference::sgd_update::<f32>(&mut w_ref, &g, &mut v_ref, &p);
    // Rank 1, 2 and 4 tensors that nothing else holds: updated in place.
    let (w1, v1) = Wgpu::sgd_update(
        on::<Wgpu, 1>(&w, [24], &device()),
        on(&g, [24], &device()),
        on(&v, [24], &device()),
        &p,
    );
    close(&values(w1), &w_ref, 1e-7, "sgd w rank 1");
    close(&values(v1), &v_ref, 1e-7, "sgd v rank 1");
    let (w2, v2) = Wgpu::sgd_update(
        on::<Wgpu, 2>(&w, [4, 6], &device()),
        on(&g, [4, 6], &device()),
        on(&v, [4, 6], &device()),
        &p,
    );
    close(&values(w2), &w_ref, 1e-7, "sgd w rank 2");
    close(&values(v2), &v_ref, 1e-7, "sgd v rank 2");
    // Shared: the caller's copies keep their values.
    let (ws, vs) = (gpu(&w, [1, 2, 3, 4]), gpu(&v, [1, 2, 3, 4]));
    let (w4, v4) = Wgpu::sgd_update(ws.clone(), gpu(&g, [1, 2, 3, 4]), vs.clone(), &p);
    close(&host(w4), &w_ref, 1e-7, "sgd w rank 4");
    close(&host(v4), &v_ref, 1e-7, "sgd v rank 4");
    assert_eq!(host(ws), w, "a shared weight tensor was overwritten");
    assert_eq!(host(vs), v, "a shared momentum tensor was overwritten");
}

/// A training step of the small net on wgpu against the CPU step: the plan as compiled, and with
/// the split-grouped-convolution lowering (strided channel slices into burn's convolutions, and a
/// concat leading the fused bias + ReLU).
#[test]
fn a_training_step_of_the_small_net_on_wgpu_matches_the_cpu() {
    if !vulkan() {
        return;
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../graphs/tiny.ron")).unwrap();
    let checked = alexc::front_end_str(&text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lower = |lowering: alexc::Lowering| {
        alexc::lower_with(&checked, alexc::ir::Mode::Train, 2, &lowering, &mut |_, _, _| {})
            .unwrap()
            .into_plan(alexc::ir::Mode::Train, "tiny.ron")
    };
    let plan = lower(alexc::Lowering::default());
    for gpu_plan in [plan.clone(), lower(alexc::Lowering { split_grouped_conv: true, ..Default::default() })]
    {
        let mut cpu = alexrt::exec::Executor::<alexrt::Cpu>::new(&plan, Default::default()).unwrap();
        let mut gpu = alexrt::exec::Executor::<Wgpu>::new(&gpu_plan, device()).unwrap();
        for e in [&mut cpu.options, &mut gpu.options] {
            e.capture_gradients = true;
        }
        let batch = alexrt::exec::Batch { images: random(2 * 3 * 31 * 31, 3), labels: vec![1, 7] };
        let (a, b) = (cpu.step(&batch, 0.01).unwrap(), gpu.step(&batch, 0.01).unwrap());
        let (la, lb) = (a.loss.unwrap(), b.loss.unwrap());
        assert!((la - lb).abs() <= 1e-5 * la.abs(), "loss: cpu {la} vs wgpu {lb}");
        for (name, g) in &a.gradients {
            let h = &b.gradients[name];
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
            for (i, (x, y)) in g.iter().zip(h).enumerate() {
                assert!((x - y).abs() <= 1e-4 * scale, "{name}[{i}]: cpu {x} vs wgpu {y}");
            }
        }
        // The updated parameters and momenta (the update ran on the device, in place).
        for (name, _) in cpu.persistent_names() {
            let p = cpu.persistent_values(&name).unwrap().unwrap();
            let q = gpu.persistent_values(&name).unwrap().unwrap();
            let scale = p.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
            for (i, (x, y)) in p.iter().zip(&q).enumerate() {
                assert!((x - y).abs() <= 1e-4 * scale, "{name}[{i}] after the step: cpu {x} vs wgpu {y}");
            }
        }
    }
}

#[test]
fn the_kernel_check_of_the_gpu_script_runs_on_wgpu() {
    if !vulkan() {
        return;
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"))
        .args(["check-kernels", "--device", "wgpu", "--batch", "1", "--steps", "1", "--skip-conv"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let errors = report["max_relative_error"].as_object().unwrap();
    let checked: Vec<&String> = errors.values().flat_map(|v| v.as_object().unwrap().keys()).collect();
    for kernel in ["lrn_backward", "bias_relu_lrn", "lrn_relu_backward", "pool_relu_backward", "sgd_update"] {
        assert!(checked.iter().any(|k| *k == kernel), "{kernel} is not checked: {out}");
    }
    let worst = errors
        .values()
        .flat_map(|v| v.as_object().unwrap().values().map(|e| e.as_f64().unwrap()))
        .fold(0.0f64, f64::max);
    assert!(worst < 1e-4, "{out}");
    assert!(report["ms"]["tail_forward_fused"].as_f64().unwrap() > 0.0, "{out}");
    assert!(report["copy_gbps"].as_f64().unwrap() > 0.0);
}

#[test]
fn asking_for_cuda_without_it_is_one_sentence() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"))
        .args(["check-kernels", "--device", "cuda"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--device cuda:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_small_net_trains_on_wgpu() {
    if !vulkan() {
        return;
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../graphs/tiny.ron")).unwrap();
    let plan = alexc::compile_str(&text, "tiny.ron", alexc::ir::Mode::Train, 32).unwrap();
    let (_, epochs) = vulkan::train_on_wgpu(&plan, "train");
    vulkan::assert_learns(&epochs);
}
