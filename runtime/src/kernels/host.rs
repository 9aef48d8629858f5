//! Tensors on the host and back: the round trip through which the default kernels run the
//! reference kernels ([`super::reference`]) on any backend, in the tensor's precision.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorData};

use super::{reference, LrnParams, PoolParams};

/// A float tensor's values on the host, in its own precision.
pub(crate) enum Host {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

pub(crate) fn to_host<B: Backend>(t: Tensor<B, 4>) -> (Host, [usize; 4]) {
    let dims = t.dims();
    let data = t.into_data();
    let host = if data.dtype == DType::F64 {
        Host::F64(data.into_vec::<f64>().expect("f64 data"))
    } else {
        Host::F32(data.convert::<f32>().into_vec::<f32>().expect("f32 data"))
    };
    (host, dims)
}

pub(crate) fn from_host<B: Backend>(v: Host, dims: [usize; 4], device: &B::Device) -> Tensor<B, 4> {
    match v {
        Host::F32(v) => Tensor::from_data(TensorData::new(v, dims), device),
        Host::F64(v) => Tensor::from_data(TensorData::new(v, dims), device),
    }
}

/// The LRN gradient on the host in the tensors' precision; with `relu_mask`, through the ReLU
/// whose output `x` is.
pub(crate) fn host_lrn_backward<B: Backend>(
    x: Tensor<B, 4>,
    y: Tensor<B, 4>,
    dy: Tensor<B, 4>,
    p: &LrnParams,
    relu_mask: bool,
) -> Tensor<B, 4> {
    let device = x.device();
    let ((x, dims), (y, _), (dy, _)) = (to_host(x), to_host(y), to_host(dy));
    let dx = match (x, y, dy) {
        (Host::F32(x), Host::F32(y), Host::F32(dy)) => Host::F32(lrn_grad(&x, &y, &dy, dims, p, relu_mask)),
        (Host::F64(x), Host::F64(y), Host::F64(dy)) => Host::F64(lrn_grad(&x, &y, &dy, dims, p, relu_mask)),
        _ => panic!("lrn_backward: inputs of mixed precision"),
    };
    from_host(dx, dims, &device)
}

/// The LRN gradient by the reference kernel; with `relu`, through the ReLU whose output `x` is.
pub(crate) fn lrn_grad<T: reference::Real>(
    x: &[T],
    y: &[T],
    dy: &[T],
    dims: [usize; 4],
    p: &LrnParams,
    relu: bool,
) -> Vec<T> {
    let mut dx = reference::lrn_backward(x, y, dy, dims, p);
    if relu {
        reference::relu_mask(&mut dx, x);
    }
    dx
}

/// LRN by the reference kernel on a host copy, in the tensor's precision (f32 for half ones).
pub(crate) fn host_lrn_forward<B: Backend>(x: Tensor<B, 4>, p: &LrnParams) -> Tensor<B, 4> {
    let device = x.device();
    let (x, dims) = to_host(x);
    let y = match x {
        Host::F32(x) => Host::F32(reference::lrn_forward(&x, dims, p)),
        Host::F64(x) => Host::F64(reference::lrn_forward(&x, dims, p)),
    };
    from_host(y, dims, &device)
}

pub(crate) fn host_i32<B: Backend>(t: Tensor<B, 4, Int>) -> Vec<i32> {
    t.into_data().convert::<i32>().into_vec::<i32>().expect("i32 data")
}

/// The max-pooling gradient on a host copy of `dy` and the indices.
pub(crate) fn host_max_pool_backward<B: Backend>(
    dy: Tensor<B, 4>,
    argmax: Tensor<B, 4, Int>,
    input_hw: [usize; 2],
    p: &PoolParams,
) -> Tensor<B, 4> {
    let device = dy.device();
    let (dy, [n, c, oh, ow]) = to_host(dy);
    let arg = host_i32(argmax);
    let dx = match dy {
        Host::F32(dy) => Host::F32(reference::max_pool_backward(&dy, &arg, input_hw, [oh, ow], p)),
        Host::F64(dy) => Host::F64(reference::max_pool_backward(&dy, &arg, input_hw, [oh, ow], p)),
    };
    from_host(dx, [n, c, input_hw[0], input_hw[1]], &device)
}
