//! A fully connected layer's products on burn's `matmul`, for any backend: the defaults of
//! [`KernelBackend`](super::KernelBackend)'s `linear*` methods and the CPU's fallback.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// `x W^T`, the weight stored `out x in`.
pub fn burn_linear<B: Backend>(x: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    x.matmul(w.transpose())
}

/// `dy W`.
pub fn burn_linear_data_grad<B: Backend>(dy: Tensor<B, 2>, w: Tensor<B, 2>) -> Tensor<B, 2> {
    dy.matmul(w)
}

/// `dy^T x`. `dy^T` is small (`out x batch`): a contiguous copy of it lets a backend's product
/// run on plain row-major operands.
pub fn burn_linear_weight_grad<B: Backend>(x: Tensor<B, 2>, dy: Tensor<B, 2>) -> Tensor<B, 2> {
    let dtype = dy.dtype();
    let dy_t = Tensor::<B, 2>::from_data(dy.transpose().into_data(), (&x.device(), dtype));
    dy_t.matmul(x)
}
