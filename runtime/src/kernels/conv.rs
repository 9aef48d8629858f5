//! Convolutions by burn's own ops, on any backend: the [`KernelBackend`](super::KernelBackend)
//! defaults, and the fallback of backends with their own engine for what it does not take.

use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorPrimitive};

use alexir::catalog::ConvAttrs;

/// burn's convolution options for our attributes.
pub fn conv_options(a: &ConvAttrs) -> ConvOptions<2> {
    ConvOptions::new([a.stride, a.stride], [a.padding, a.padding], [1, 1], a.groups)
}

/// burn's convolution with the bias (which it adds as it writes the output), then ReLU.
pub fn burn_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    w: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    a: &ConvAttrs,
    relu_after: bool,
) -> Tensor<B, 4> {
    let y = burn::tensor::module::conv2d(x, w, bias, conv_options(a));
    if relu_after {
        relu(y)
    } else {
        y
    }
}

/// The input gradient as burn's transposed convolution.
pub fn burn_conv2d_data_grad<B: Backend>(
    dy: Tensor<B, 4>,
    w: Tensor<B, 4>,
    a: &ConvAttrs,
    input_hw: [usize; 2],
) -> Tensor<B, 4> {
    let [_, _, oh, ow] = dy.dims();
    let pad_out = |input: usize, out: usize| input + 2 * a.padding - ((out - 1) * a.stride + a.kernel);
    let opts = ConvTransposeOptions::new(
        [a.stride, a.stride],
        [a.padding, a.padding],
        [pad_out(input_hw[0], oh), pad_out(input_hw[1], ow)],
        [1, 1],
        a.groups,
    );
    burn::tensor::module::conv_transpose2d(dy, w, None, opts)
}

/// The weight gradient by burn's `conv2d_weight_backward`.
pub fn burn_conv2d_weight_grad<B: Backend>(x: Tensor<B, 4>, dy: Tensor<B, 4>, a: &ConvAttrs) -> Tensor<B, 4> {
    let shape = [a.out_channels, x.dims()[1] / a.groups, a.kernel, a.kernel];
    let zeros = Tensor::<B, 4>::zeros(shape, &x.device());
    let g = B::conv2d_weight_backward(
        x.into_primitive().tensor(),
        zeros.into_primitive().tensor(),
        dy.into_primitive().tensor(),
        conv_options(a),
    );
    Tensor::from_primitive(TensorPrimitive::Float(g))
}
