//! 2-D convolution (grouped), and its data and weight gradients.

use serde::{Deserialize, Serialize};

use super::{
    compute_dtype, expect_rank, input_at, product_dtype, tiling_warning, window_out, ConvAlgo, Cost,
    FusionClass, GradCtx, GradientError, Inferred, Op, OpDef, ShapeError,
};
use crate::value::{DType, TensorType, ValueRef};

/// Convolution attributes, shared by the forward op and its gradients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvAttrs {
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    /// How the node is computed, once the `conv-algo` pass has chosen (the backend's own
    /// convolution until then).
    #[serde(default)]
    pub algo: Option<ConvAlgo>,
}

impl ConvAttrs {
    fn text(&self) -> String {
        let algo = self.algo.map(|a| format!(" algo={}", a.name())).unwrap_or_default();
        format!(
            "out={} k={} s={} p={} g={}{algo}",
            self.out_channels, self.kernel, self.stride, self.padding, self.groups
        )
    }
}

/// `y = conv(x, w)`; `x: N x C x H x W`, `w: O x C/g x k x k` (PyTorch's layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2d(pub ConvAttrs);

impl OpDef for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        self.0.text()
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let a = &self.0;
        let x = input_at(inputs, 0, "conv2d")?;
        expect_rank(x, 3, "conv2d")?;
        let (c, h, w) = (x.dims[0], x.dims[1], x.dims[2]);
        if a.stride == 0 {
            return Err(ShapeError::new("stride is 0", "use a stride of at least 1"));
        }
        if a.kernel == 0 || a.out_channels == 0 || a.groups == 0 {
            return Err(ShapeError::new(
                "kernel, out_channels and groups must be at least 1",
                "set each to a positive number",
            ));
        }
        if c % a.groups != 0 || !a.out_channels.is_multiple_of(a.groups) {
            return Err(ShapeError::new(
                format!(
                    "{} input channels and {} output channels cannot be split into {} groups",
                    c, a.out_channels, a.groups
                ),
                "choose groups that divide both the input and the output channel counts",
            ));
        }
        if a.padding.checked_mul(2).and_then(|p| p.checked_add(h.max(w))).is_none() {
            return Err(ShapeError::new(
                format!("padding {} is too large", a.padding),
                "use a padding smaller than the kernel",
            ));
        }
        let oh = window_out(h, a.kernel, a.stride, a.padding);
        let ow = window_out(w, a.kernel, a.stride, a.padding);
        let (Some(oh), Some(ow)) = (oh, ow) else {
            return Err(ShapeError::new(
                format!(
                    "the {0}x{0} window is larger than its {h}x{w} input (padding {1})",
                    a.kernel, a.padding
                ),
                "use a smaller kernel, more padding, or a larger input",
            ));
        };
        let expected_w = [a.out_channels, c / a.groups, a.kernel, a.kernel];
        if let Some(wt) = inputs.get(1) {
            if wt.dims != expected_w {
                return Err(ShapeError::new(
                    format!("weight has shape {:?}, expected {:?}", wt.dims, expected_w),
                    "the weight is O x C/groups x k x k",
                ));
            }
        }
        let dtype = product_dtype(inputs, "conv2d")?;
        let mut warnings = Vec::new();
        warnings.extend(tiling_warning("height", h, a.kernel, a.stride, a.padding));
        if w != h {
            warnings.extend(tiling_warning("width", w, a.kernel, a.stride, a.padding));
        }
        Ok(Inferred { outputs: vec![TensorType::batched(dtype, vec![a.out_channels, oh, ow])], warnings })
    }
    fn param_shape(&self, port: usize, inputs: &[Option<&TensorType>]) -> Option<Vec<usize>> {
        let x = inputs.first().copied().flatten()?;
        let a = &self.0;
        (port == 1 && x.dims.len() == 3 && a.groups > 0)
            .then(|| vec![a.out_channels, x.dims[0] / a.groups, a.kernel, a.kernel])
    }
    fn reads_f32_master(&self, port: usize) -> bool {
        port == 1
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, inputs: &[&TensorType], outputs: &[TensorType]) -> Cost {
        let (Some(x), Some(y)) = (inputs.first(), outputs.first()) else { return Cost::default() };
        let per_output = (x.dims[0] / self.0.groups.max(1)) as u64 * (self.0.kernel as u64).pow(2);
        Cost { macs: (y.elements_per_sample() as u64).saturating_mul(per_output) }
    }
    fn gradient(&self, ctx: &mut GradCtx<'_>) -> Result<Vec<Option<ValueRef>>, GradientError> {
        let dy = ctx.dy(0)?;
        let (x, w) = (ctx.input(0), ctx.input(1));
        let x_dims = ctx.input_type(0).dims.clone();
        let dx = if ctx.wants(0) {
            let op = Conv2dBackwardData { attrs: self.0.clone(), input_hw: [x_dims[1], x_dims[2]] };
            Some(ctx.emit("grad_input", Op::Conv2dBackwardData(op), &[dy, w])?)
        } else {
            None
        };
        let dw = ctx.emit(
            "grad_weight",
            Op::Conv2dBackwardWeight(Conv2dBackwardWeight(self.0.clone())),
            &[x, dy],
        )?;
        Ok(vec![dx, Some(dw)])
    }
}

/// `dx` of a convolution from `(dy, w)`; `input_hw` settles the size that strides leave ambiguous.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2dBackwardData {
    pub attrs: ConvAttrs,
    pub input_hw: [usize; 2],
}

impl OpDef for Conv2dBackwardData {
    fn name(&self) -> &'static str {
        "conv2d_backward_data"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        format!("{} in={}x{}", self.attrs.text(), self.input_hw[0], self.input_hw[1])
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let (dy, w) = (input_at(inputs, 0, self.name())?, input_at(inputs, 1, self.name())?);
        expect_rank(dy, 3, "conv2d_backward_data")?;
        expect_rank(w, 4, "conv2d_backward_data")?;
        let a = &self.attrs;
        let [h, wd] = self.input_hw;
        if window_out(h, a.kernel, a.stride, a.padding) != Some(dy.dims[1])
            || window_out(wd, a.kernel, a.stride, a.padding) != Some(dy.dims[2])
            || dy.dims[0] != a.out_channels
            || w.dims[0] != a.out_channels
        {
            return Err(ShapeError::new(
                format!("gradient {dy} does not match a convolution of a {h}x{wd} input"),
                "internal: the backward graph is inconsistent",
            ));
        }
        let channels = w.dims[1].checked_mul(a.groups).ok_or_else(|| {
            ShapeError::new(
                format!("weight {w} with {} groups is too large", a.groups),
                "recompile the graph",
            )
        })?;
        let dtype = product_dtype(inputs, "conv2d_backward_data")?;
        Ok(vec![TensorType::batched(dtype, vec![channels, h, wd])].into())
    }
    fn reads_f32_master(&self, port: usize) -> bool {
        port == 1
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, inputs: &[&TensorType], _: &[TensorType]) -> Cost {
        let w = inputs[1];
        Cost { macs: (inputs[0].elements_per_sample() * w.dims[1] * w.dims[2] * w.dims[3]) as u64 }
    }
}

/// `dw` of a convolution from `(x, dy)`, summed over the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv2dBackwardWeight(pub ConvAttrs);

impl OpDef for Conv2dBackwardWeight {
    fn name(&self) -> &'static str {
        "conv2d_backward_weight"
    }
    fn arity(&self) -> Option<usize> {
        Some(2)
    }
    fn attrs(&self) -> String {
        self.0.text()
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<Inferred, ShapeError> {
        let x = input_at(inputs, 0, self.name())?;
        expect_rank(x, 3, "conv2d_backward_weight")?;
        // A sum over the batch: accumulated, and kept, in f32 whatever the activations' type.
        compute_dtype(inputs, &[0, 1], "conv2d_backward_weight")?;
        let a = &self.0;
        if a.groups == 0 {
            return Err(ShapeError::new("groups is 0", "internal: the backward graph is inconsistent"));
        }
        Ok(vec![TensorType::fixed(
            DType::F32,
            vec![a.out_channels, x.dims[0] / a.groups, a.kernel, a.kernel],
        )]
        .into())
    }
    fn fusion_class(&self) -> FusionClass {
        FusionClass::OutElementwiseFusable
    }
    fn cost(&self, inputs: &[&TensorType], _: &[TensorType]) -> Cost {
        // As many multiply-adds as the forward convolution: each pairs one input with one dy.
        let a = &self.0;
        let per_output = (inputs[0].dims[0] / a.groups) * a.kernel * a.kernel;
        Cost { macs: (inputs[1].elements_per_sample() * per_output) as u64 }
    }
}
