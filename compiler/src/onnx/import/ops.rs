//! The import table: each ONNX op this project reads, as a graph-file layer (a catalog op), an
//! identity (a value under another name), or a constant. What the graph language cannot say is
//! refused, naming the node, the attribute and what would be needed.

use super::attrs::{decimal, Attrs};
use super::Importer;
use crate::catalog::{Add, Conv2d, ConvAttrs, Flatten, Linear, Lrn, MaxPool, Op, PoolAttrs, Relu};
use crate::ir::LrnConvention;
use crate::onnx::error::OnnxError;
use crate::onnx::tensor::Constant;

/// The ops [`import_node`] reads, for the refusal's help.
pub const KNOWN: &str = "Conv, Gemm, MatMul (+ Add of a bias), Relu, LRN, MaxPool, Flatten, Reshape to a flat vector, Add, \
     and as identities Dropout, Identity, AveragePool 1x1 stride 1 (AdaptiveAvgPool2d to the size it is given) and \
     GlobalAveragePool of a 1x1 map; Constant and Transpose of constants";

pub fn import_node(im: &mut Importer, a: &Attrs<'_>) -> Result<(), OnnxError> {
    if a.node.domain.as_deref().is_some_and(|d| !d.is_empty() && d != "ai.onnx") {
        return Err(a.error(
            None,
            format!("op of domain `{}`", a.node.domain.as_deref().unwrap_or("")),
            format!("alexc reads ONNX's default domain: {KNOWN}"),
        ));
    }
    match a.op.as_str() {
        "Constant" => {
            let t = a
                .node
                .attribute
                .iter()
                .find(|x| x.name.as_deref() == Some("value"))
                .and_then(|x| x.t.as_ref());
            let t =
                t.ok_or_else(|| a.error(Some("value"), "is not a tensor", "give Constant a `value` tensor"))?;
            let c = crate::onnx::tensor::read(t, &im.model)?;
            im.set_constant(a, c);
        }
        "Transpose" => {
            let c = im.constant(a, 0)?;
            let perm = a.ints("perm").unwrap_or_else(|| vec![1, 0]);
            if c.dims.len() != 2 || perm != [1, 0] {
                return Err(a.error(
                    Some("perm"),
                    "only a 2-D constant's transpose is taken",
                    "transpose weights before exporting",
                ));
            }
            im.set_constant(a, transpose(&c));
        }
        "Identity" | "Dropout" => im.alias(a, 0)?,
        "AveragePool" | "GlobalAveragePool" => {
            let x = im.value(a, 0)?;
            let global = a.op == "GlobalAveragePool";
            let identity = if global {
                x.ty.dims.len() == 3 && x.ty.dims[1] == 1 && x.ty.dims[2] == 1
            } else {
                a.ints("kernel_shape").is_some_and(|k| k.iter().all(|&v| v == 1))
                    && a.ints("strides").is_none_or(|s| s.iter().all(|&v| v == 1))
                    && a.symmetric_pads().is_ok_and(|p| p == 0)
            };
            if !identity {
                return Err(a.error(
                    Some(if global { "input" } else { "kernel_shape" }),
                    format!("average pooling of a {} map is not the identity", x.ty),
                    "a graph file has no average pooling: only a pooling that changes nothing (AdaptiveAvgPool2d((6, 6)) on a 6x6 map, exported as a 1x1 AveragePool) is imported",
                ));
            }
            im.alias(a, 0)?;
        }
        "Relu" => im.layer(a, Op::Relu(Relu), &[0], None, None)?,
        "Add" => match (im.is_constant(a, 0), im.is_constant(a, 1)) {
            (false, false) => im.layer(a, Op::Add(Add), &[0, 1], None, None)?,
            (c0, _) => im.add_bias(a, if c0 { 0 } else { 1 })?,
        },
        "LRN" => {
            let size = a.int("size", 0);
            if size <= 0 || size % 2 == 0 {
                return Err(a.error(
                    Some("size"),
                    format!("{size} is not a positive odd window"),
                    "a graph file's LRN window is odd, centred on its channel",
                ));
            }
            let lrn = Lrn {
                size: size as usize,
                alpha: decimal(a.float("alpha", 1e-4)),
                beta: decimal(a.float("beta", 0.75)),
                k: decimal(a.float("bias", 1.0)),
                convention: LrnConvention::Caffe,
            };
            im.layer(a, Op::Lrn(lrn), &[0], None, None)?;
        }
        "MaxPool" => {
            if a.node.output.len() > 1 && a.node.output[1..].iter().any(|o| !o.is_empty() && im.is_used(o)) {
                return Err(a.error(
                    Some("Indices"),
                    "the indices output is read",
                    "a graph file's max pooling gives the maximum only",
                ));
            }
            if a.int("ceil_mode", 0) != 0 {
                return Err(a.error(
                    Some("ceil_mode"),
                    "rounds the output size up",
                    "a graph file's pooling rounds down (ceil_mode 0); re-export with ceil_mode=False",
                ));
            }
            a.no_dilation()?;
            let attrs = PoolAttrs {
                kernel: a.square("kernel_shape", None, "kernel")?,
                stride: a.square("strides", Some(1), "stride")?,
                padding: a.symmetric_pads()?,
            };
            im.layer(a, Op::MaxPool(MaxPool { attrs, argmax: false }), &[0], None, None)?;
        }
        "Conv" => {
            a.no_dilation()?;
            let w = im.constant(a, 1)?;
            if w.dims.len() != 4 || w.dims[2] != w.dims[3] {
                return Err(a.error(
                    Some("W"),
                    format!("weight of shape {:?}", w.dims),
                    "a graph file's convolution has a square 2-D kernel (O x C/g x k x k)",
                ));
            }
            let bias = if a.node.input.get(2).is_some_and(|b| !b.is_empty()) {
                Some(im.constant(a, 2)?.values)
            } else {
                None
            };
            let attrs = ConvAttrs {
                out_channels: w.dims[0],
                kernel: w.dims[2],
                stride: a.square("strides", Some(1), "stride")?,
                padding: a.symmetric_pads()?,
                groups: usize::try_from(a.int("group", 1)).unwrap_or(0),
                algo: None,
            };
            im.layer(a, Op::Conv2d(Conv2d(attrs)), &[0], Some(w), bias)?;
        }
        "Gemm" => {
            if a.int("transA", 0) != 0 || a.float("alpha", 1.0) != 1.0 || a.float("beta", 1.0) != 1.0 {
                return Err(a.error(
                    Some("transA/alpha/beta"),
                    "scales or transposes the input",
                    "a graph file's linear layer is x w^T + b: transA 0, alpha 1, beta 1",
                ));
            }
            let mut w = im.constant(a, 1)?;
            if w.dims.len() != 2 {
                return Err(a.error(
                    Some("B"),
                    format!("weight of shape {:?}", w.dims),
                    "Gemm's B is a matrix",
                ));
            }
            if a.int("transB", 0) == 0 {
                w = transpose(&w);
            }
            let bias = if a.node.input.get(2).is_some_and(|b| !b.is_empty()) {
                Some(im.constant(a, 2)?.values)
            } else {
                None
            };
            let op = Op::Linear(Linear { out_features: w.dims[0], in_features: None });
            im.layer(a, op, &[0], Some(w), bias)?;
        }
        "MatMul" => {
            let w = transpose(&im.constant(a, 1)?);
            let op = Op::Linear(Linear { out_features: w.dims[0], in_features: None });
            im.layer(a, op, &[0], Some(w), None)?;
        }
        "Flatten" => {
            if a.int("axis", 1) != 1 {
                return Err(a.error(
                    Some("axis"),
                    format!("{} keeps other than the batch", a.int("axis", 1)),
                    "a graph file flattens everything after the batch (axis 1)",
                ));
            }
            im.flatten(a)?;
        }
        "Reshape" => {
            let x = im.value(a, 0)?;
            let shape = im.constant(a, 1)?.values;
            let flat = x.ty.elements_per_sample() as f64;
            let flattens = shape.len() == 2 && (shape[1] == flat || (shape[1] == -1.0 && shape[0] != -1.0));
            if !flattens {
                return Err(a.error(
                    Some("shape"),
                    format!("{shape:?} of a {} value is not a flatten", x.ty),
                    "a graph file reshapes only to N x (C*H*W) (Flatten)",
                ));
            }
            im.flatten(a)?;
        }
        other => {
            return Err(a.error(
                None,
                format!("op `{other}` has no counterpart in the graph language"),
                format!("alexc imports {KNOWN}"),
            ));
        }
    }
    Ok(())
}

/// A 2-D constant's transpose.
pub fn transpose(c: &Constant) -> Constant {
    let (r, k) = (c.dims[0], c.dims[1]);
    let mut values = vec![0.0; c.values.len()];
    for i in 0..r {
        for j in 0..k {
            values[j * r + i] = c.values[i * k + j];
        }
    }
    Constant { dims: vec![k, r], values }
}

/// Whether `f` is `Flatten` (for the importer's use).
pub fn flatten_op() -> Op {
    Op::Flatten(Flatten)
}
