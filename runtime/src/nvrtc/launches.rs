//! Every CubeCL kernel the runtime launches on CUDA, launched the way it launches them: through
//! [`KernelBackend`] on burn's `CubeBackend` (as [`crate::Cuda`], with i32 indices and u8
//! masks) over a [`CudaTarget`], at alexnet.ron's shapes. The launch code is the runtime's own
//! (`kernels/cube/mod.rs`): the comptime flags, cube dims and vectorisation the target records
//! are the ones a GPU of that architecture would get. Each call's launches are paired with the
//! call that made them.

use burn::tensor::{Bool, BoolStore, DType, Int, Shape, Tensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::CubeBackend;
use cubecl::Runtime;

use super::target::{CompiledLaunch, CudaTarget, TargetRuntime};
use crate::kernels::{KernelBackend, LrnParams, PoolParams, SgdParams};

/// The runtime's CUDA backend with the target in place of the GPU.
type Target = CubeBackend<TargetRuntime, f32, i32, u8>;

/// One call of the runtime's kernel interface and what it launched.
#[derive(Debug, Clone)]
pub struct Call {
    /// The [`KernelBackend`] method and its flags, as the runtime calls it.
    pub call: String,
    /// Where alexnet.ron's step makes that call, and the launch's shape.
    pub at: String,
    pub launches: Vec<Result<CompiledLaunch, String>>,
}

/// Makes tensors of one element type on the target: names, with nothing allocated.
struct Maker {
    device: CudaTarget,
    dtype: DType,
}

impl Maker {
    fn raw(&self, dims: &[usize], dtype: DType) -> burn_cubecl::tensor::CubeTensor<TargetRuntime> {
        let client = TargetRuntime::client(&self.device);
        empty_device_dtype(client, self.device, Shape::from(dims.to_vec()), dtype)
    }

    fn float<const D: usize>(&self, dims: [usize; D]) -> Tensor<Target, D> {
        Tensor::from_primitive(TensorPrimitive::Float(self.raw(&dims, self.dtype)))
    }

    /// An f32 tensor whatever the type checked: the update reads the f32 master copies.
    fn master<const D: usize>(&self, dims: [usize; D]) -> Tensor<Target, D> {
        Tensor::from_primitive(TensorPrimitive::Float(self.raw(&dims, DType::F32)))
    }

    fn index<const D: usize>(&self, dims: [usize; D]) -> Tensor<Target, D, Int> {
        Tensor::from_primitive(self.raw(&dims, DType::I32))
    }

    fn mask<const D: usize>(&self, dims: [usize; D]) -> Tensor<Target, D, Bool> {
        Tensor::from_primitive(self.raw(&dims, DType::Bool(BoolStore::U8)))
    }
}

/// alexnet.ron's LRN (size 5, alpha 1e-4 on the sum, beta 0.75, k 2), overlapping pooling (3/2), SGD.
const LRN: LrnParams = LrnParams { size: 5, scale: 1e-4, beta: 0.75, k: 2.0 };
const POOL: PoolParams = PoolParams { kernel: 3, stride: 2, padding: 0 };
const SGD: SgdParams = SgdParams { momentum: 0.9, rate: 0.01, decay: 5e-4 };

/// Runs each of the runtime's kernel calls once on `device` with `dtype` tensors at batch `b`,
/// and returns what each launched, in order.
pub fn run_all(device: CudaTarget, dtype: DType, b: usize) -> Vec<Call> {
    let m = Maker { device, dtype };
    let client = TargetRuntime::client(&device);
    // The launches reach the target's server in order, which logs them all (an earlier run's
    // too: one server a device); once it has synced, the log holds every launch made so far.
    let logged = || {
        let _ = cubecl::future::block_on(client.sync());
        client.info().lock().map(|l| l.clone()).unwrap_or_default()
    };
    let mut seen = logged().len();
    let mut calls = Vec::new();
    let mut record = |call: &str, at: String| {
        let log = logged();
        calls.push(Call { call: call.into(), at, launches: log[seen.min(log.len())..].to_vec() });
        seen = log.len();
    };
    let (c1, c2, c5) = ([b, 96, 55, 55], [b, 256, 27, 27], [b, 256, 13, 13]);
    let (p1, p5) = ([b, 96, 27, 27], [b, 256, 6, 6]);
    let shape = |s: &[usize]| format!("{s:?}");

    let _ = Target::bias_relu_lrn(m.float(c1), m.float([96]), &LRN, true);
    record("bias_relu_lrn(keep_relu)", format!("conv1's tail, training {}", shape(&c1)));
    let _ = Target::bias_relu_lrn(m.float(c2), m.float([256]), &LRN, false);
    record("bias_relu_lrn", format!("conv2's tail, inference {}", shape(&c2)));
    let _ = Target::lrn_forward(m.float(c1), &LRN);
    record("lrn_forward", format!("norm1 step by step (--unfused) {}", shape(&c1)));
    let _ = Target::lrn_relu_backward(m.float(c1), m.float(c1), m.float(c1), &LRN);
    record("lrn_relu_backward", format!("norm1 + relu1 gradient {}", shape(&c1)));
    let _ = Target::lrn_backward(m.float(c1), m.float(c1), m.float(c1), &LRN);
    record("lrn_backward", format!("norm1 gradient (--unfused) {}", shape(&c1)));
    let _ = Target::max_pool_forward(m.float(c1), &POOL);
    record("max_pool_forward", format!("pool1 {} -> {}", shape(&c1), shape(&p1)));
    let _ = Target::max_pool_backward(m.float(p1), m.index(p1), [55, 55], &POOL);
    record("max_pool_backward", format!("pool1 gradient {}", shape(&c1)));
    let _ = Target::max_pool_relu_backward(m.float(p5), m.index(p5), m.float(c5), &POOL);
    record("max_pool_relu_backward", format!("pool5 + relu5 gradient {}", shape(&c5)));
    let _ = Target::bias_act(m.float([b, 384, 13, 13]), m.float([384]), true);
    record("bias_act(relu)", format!("conv3's bias + ReLU {}", shape(&[b, 384, 13, 13])));
    let _ = Target::bias_act(m.float([b, 1000]), m.float([1000]), false);
    record("bias_act", format!("fc8's bias {}", shape(&[b, 1000])));
    let _ = Target::masked_grad(m.float([b, 4096]), Some(m.float([b, 4096])), Some((m.mask([b, 4096]), 2.0)));
    record("masked_grad(relu, dropout)", format!("fc7's dropout + ReLU gradient {}", shape(&[b, 4096])));
    let _ = Target::masked_grad(m.float(c5), Some(m.float(c5)), None);
    record("masked_grad(relu)", format!("conv5's ReLU gradient {}", shape(&c5)));
    let _ = Target::masked_grad(m.float([b, 4096]), None, Some((m.mask([b, 4096]), 2.0)));
    record("masked_grad(dropout)", format!("a dropout gradient alone {}", shape(&[b, 4096])));
    let fc6 = [4096, 9216];
    let _ = Target::sgd_update(m.master(fc6), m.master(fc6), m.master(fc6), &SGD);
    record("sgd_update", format!("fc6's weight {}", shape(&[4096, 9216])));
    // Under 256 units a launch gets fewer warps, and the kernel is compiled for that
    // `__launch_bounds__`: conv1's bias is the one parameter that small.
    let _ = Target::sgd_update(m.master([96]), m.master([96]), m.master([96]), &SGD);
    record("sgd_update", format!("conv1's bias {}", shape(&[96])));
    calls
}
