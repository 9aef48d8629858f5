//! The CubeCL kernels on wgpu, against the reference CPU kernels on random inputs: odd sizes,
//! batch 1, fewer channels than the LRN window, padding, windows whose maximum ties, and the
//! gradients; then a whole training step of the small net on wgpu against the CPU step.
//!
//! Without a GPU this runs on Mesa's lavapipe (`apt-get install mesa-vulkan-drivers`, which
//! .ci/run does). Where no Vulkan device exists the tests say so and skip, except under CI, where
//! a missing device is a failure rather than a silent pass.

use alexrt::init::Rng;
use alexrt::kernels::{reference, KernelBackend, LrnParams, PoolParams};
use alexrt::Wgpu;
use burn::backend::wgpu::WgpuDevice;
use burn::tensor::{Int, Tensor, TensorData};

/// Whether a Vulkan device can be had; under CI its absence fails the test.
fn vulkan() -> bool {
    let lavapipe =
        ["/usr/share/vulkan/icd.d/lvp_icd.x86_64.json", "/usr/share/vulkan/icd.d/lvp_icd.aarch64.json"];
    let found = lavapipe.iter().any(|p| std::path::Path::new(p).exists());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "CI must install mesa-vulkan-drivers for the kernel tests");
        eprintln!(
            "SKIPPED: no Vulkan driver (apt-get install mesa-vulkan-drivers to run the wgpu kernel tests)"
        );
    }
    found
}

fn device() -> WgpuDevice {
    WgpuDevice::Cpu
}

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

const SHAPES: [[usize; 4]; 4] = [[1, 3, 5, 7], [2, 7, 4, 3], [1, 2, 3, 3], [3, 5, 6, 6]];

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

#[test]
fn a_training_step_of_the_small_net_on_wgpu_matches_the_cpu() {
    if !vulkan() {
        return;
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../graphs/tiny.ron")).unwrap();
    let plan = alexc::compile_str(&text, "tiny.ron", alexc::ir::Mode::Train, 2).unwrap();
    let mut cpu = alexrt::exec::Executor::<alexrt::Cpu>::new(&plan, Default::default()).unwrap();
    let mut gpu = alexrt::exec::Executor::<Wgpu>::new(&plan, device()).unwrap();
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
}

#[test]
fn the_kernel_check_of_the_gpu_script_runs_on_wgpu() {
    if !vulkan() {
        return;
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexrt"))
        .args(["check-kernels", "--device", "wgpu", "--batch", "1", "--steps", "1"])
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let worst = report["max_relative_error"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_object().unwrap().values().map(|e| e.as_f64().unwrap()))
        .fold(0.0f64, f64::max);
    assert!(worst < 1e-4, "{out}");
    assert!(report["copy_gbps"].as_f64().unwrap() > 0.0);
}

#[test]
fn asking_for_cuda_without_it_is_one_sentence() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_alexrt"))
        .args(["check-kernels", "--device", "cuda"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("--device cuda:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
