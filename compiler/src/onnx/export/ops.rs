//! The export table: each catalog op of an inference graph as ONNX nodes (opset 17). A
//! convolution or linear layer and the bias add after it are one `Conv` or `Gemm`; dropout,
//! transfers and the loss are left out; LRN's alpha is converted to ONNX's convention, which
//! divides it by the window size as Caffe and PyTorch do (the paper does not).

use petgraph::stable_graph::NodeIndex;

use super::Exporter;
use crate::catalog::Op;
use crate::ir::{LrnConvention, ValueRef};
use crate::onnx::error::OnnxError;
use crate::onnx::proto::{attribute_type, AttributeProto, NodeProto};
use crate::onnx::tensor::i64_tensor;

pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(i),
        ..Default::default()
    }
}

pub fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

pub fn float(name: &str, f: f64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::FLOAT),
        f: Some(f as f32),
        ..Default::default()
    }
}

/// What became of an IR node in the ONNX graph.
pub enum Emitted {
    /// ONNX nodes; the IR node's output 0 is the last one's output.
    Nodes(Vec<NodeProto>),
    /// No node: the output is the input under another name (dropout at inference, a transfer).
    Alias(ValueRef),
    /// Not part of the inference graph (the loss, its labels, optimizer state).
    Nothing,
}

/// The ONNX form of IR node `n`. `ex` names values and knows which bias adds it has folded.
pub fn emit(ex: &mut Exporter<'_>, n: NodeIndex) -> Result<Emitted, OnnxError> {
    let node = &ex.graph.g[n];
    let ins = ex.graph.inputs(n);
    let name = ex.layer_name(n);
    let vals: Vec<String> = ins.iter().map(|v| ex.value(*v)).collect();
    let input = |i: usize| vals[i].clone();
    let one = |op: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>, output: String| NodeProto {
        input: inputs,
        output: vec![output],
        name: Some(name.clone()),
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    };
    let emitted = match &node.op {
        Op::Input(_) | Op::Param(_) | Op::State(_) | Op::Labels(_) | Op::SoftmaxCrossEntropy(_) => {
            Emitted::Nothing
        }
        // A bf16 plan's casts: the model is exported in f32, its weights being the f32 masters.
        Op::Dropout(_) | Op::Transfer(_) | Op::Cast(_) => Emitted::Alias(ins[0]),
        Op::Conv2d(c) => {
            let a = &c.0;
            let (mut inputs, out) = ex.with_bias(n, vec![input(0), input(1)]);
            inputs.truncate(3);
            let attrs = vec![
                ints("kernel_shape", &[a.kernel, a.kernel]),
                ints("strides", &[a.stride, a.stride]),
                ints("pads", &[a.padding; 4]),
                ints("dilations", &[1, 1]),
                int("group", a.groups as i64),
            ];
            Emitted::Nodes(vec![one("Conv", inputs, attrs, out)])
        }
        Op::Linear(_) => {
            let (inputs, out) = ex.with_bias(n, vec![input(0), input(1)]);
            let attrs = vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 1)];
            Emitted::Nodes(vec![one("Gemm", inputs, attrs, out)])
        }
        Op::BiasAdd(_) if ex.folded(n) => Emitted::Nothing,
        Op::Relu(_) => Emitted::Nodes(vec![one("Relu", vec![input(0)], vec![], ex.output(n))]),
        Op::Add(_) => Emitted::Nodes(vec![one("Add", vec![input(0), input(1)], vec![], ex.output(n))]),
        Op::Lrn(l) => {
            let alpha = match l.convention {
                LrnConvention::Paper => l.alpha * l.size as f64,
                LrnConvention::Caffe => l.alpha,
            };
            let attrs = vec![
                int("size", l.size as i64),
                float("alpha", alpha),
                float("beta", l.beta),
                float("bias", l.k),
            ];
            Emitted::Nodes(vec![one("LRN", vec![input(0)], attrs, ex.output(n))])
        }
        Op::MaxPool(p) => {
            let a = &p.attrs;
            let attrs = vec![
                ints("kernel_shape", &[a.kernel, a.kernel]),
                ints("strides", &[a.stride, a.stride]),
                ints("pads", &[a.padding; 4]),
            ];
            Emitted::Nodes(vec![one("MaxPool", vec![input(0)], attrs, ex.output(n))])
        }
        Op::Flatten(_) => {
            Emitted::Nodes(vec![one("Flatten", vec![input(0)], vec![int("axis", 1)], ex.output(n))])
        }
        Op::Reshape(r) => {
            let shape_name = format!("{name}.shape");
            let mut dims = vec![0i64];
            dims.extend(r.dims.iter().map(|&d| d as i64));
            ex.initializers.push(i64_tensor(&shape_name, &dims));
            Emitted::Nodes(vec![one("Reshape", vec![input(0), shape_name], vec![], ex.output(n))])
        }
        Op::Slice(s) => {
            let names = ["starts", "ends", "axes"].map(|k| format!("{name}.{k}"));
            for (k, v) in names.iter().zip([s.start, s.start + s.len, s.dim]) {
                ex.initializers.push(i64_tensor(k, &[v as i64]));
            }
            let mut inputs = vec![input(0)];
            inputs.extend(names);
            Emitted::Nodes(vec![one("Slice", inputs, vec![], ex.output(n))])
        }
        Op::Concat(c) => {
            let inputs = (0..ins.len()).map(input).collect();
            Emitted::Nodes(vec![one("Concat", inputs, vec![int("axis", c.dim as i64)], ex.output(n))])
        }
        other => {
            return Err(OnnxError::new(
                &ex.file,
                format!("op `{}` has no ONNX form in alexc's exporter", other.def().name()),
                "export the graph file, or a plan compiled for inference without --devices 2",
            )
            .node(&node.name, other.def().name()))
        }
    };
    Ok(emitted)
}
