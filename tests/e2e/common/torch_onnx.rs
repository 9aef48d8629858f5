//! torchvision's AlexNet (`torchvision.models.AlexNet`'s op sequence and attributes: features,
//! avgpool, flatten, classifier), narrowed to 8-16-16-16-16 channels and 32-32-10 features so that
//! it is small, as ONNX models in the op forms of torch.onnx's two exporters, built here with the
//! project's own protobuf types: the TorchScript exporter's (opset 17; `AveragePool` 1x1 for
//! AdaptiveAvgPool2d((6, 6)) on the 6x6 map, `Flatten`, `Gemm` with transB) and the newer
//! exporter's (opset 18; weights as external data beside the model, `Reshape` to N x 576, one
//! linear layer as `MatMul` of a `Transpose`d weight plus `Add`). These are hand-built in those
//! forms, not written by torch; scripts/make-onnx-fixtures.py makes the real ones where torch
//! installs.

use std::path::Path;

use alexc::onnx::proto::*;
use alexc::onnx::tensor::{f32_tensor, i64_tensor};

const CONVS: [(usize, usize, usize, usize, usize); 5] =
    [(3, 8, 11, 4, 2), (8, 16, 5, 1, 2), (16, 16, 3, 1, 1), (16, 16, 3, 1, 1), (16, 16, 3, 1, 1)];
const FCS: [(usize, usize); 3] = [(16 * 36, 32), (32, 32), (32, 10)];

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INT),
        i: Some(i),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, ins: &[&str], out: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        name: Some(name.into()),
        op_type: Some(op.into()),
        attribute,
        ..Default::default()
    }
}

fn info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Ok(v) => Dimension { dim_value: Some(*v), dim_param: None },
            Err(p) => Dimension { dim_value: None, dim_param: Some(p.to_string()) },
        })
        .collect();
    let t = TypeTensor { elem_type: Some(data_type::FLOAT), shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: Some(name.into()), r#type: Some(TypeProto { tensor_type: Some(t) }) }
}

/// Seeded values, uniform within +-1/sqrt(fan_in) as PyTorch initialises.
fn values(n: usize, fan_in: usize, seed: &mut u64) -> Vec<f32> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        })
        .collect()
}

/// Writes the model (`newer`: the newer exporter's form, with its external data file) to `path`.
pub fn write(path: &Path, newer: bool) {
    let mut seed = 12345u64;
    let mut nodes = Vec::new();
    let mut inits: Vec<TensorProto> = Vec::new();
    let mut x = "input".to_string();
    let pool = |i: usize, x: &str, nodes: &mut Vec<NodeProto>| {
        let out = format!("/features/features.{i}/MaxPool_output_0");
        let mut a = vec![
            attr_ints("kernel_shape", &[3, 3]),
            attr_ints("strides", &[2, 2]),
            attr_ints("pads", &[0; 4]),
            attr_int("ceil_mode", 0),
        ];
        if newer {
            a.push(attr_ints("dilations", &[1, 1]));
        }
        nodes.push(node("MaxPool", &format!("/features/features.{i}/MaxPool"), &[x], &out, a));
        out
    };
    let feature_index = [0, 3, 6, 8, 10];
    for (c, &(cin, cout, k, s, p)) in CONVS.iter().enumerate() {
        let i = feature_index[c];
        let (w, b) = (format!("features.{i}.weight"), format!("features.{i}.bias"));
        inits.push(f32_tensor(&w, &[cout, cin, k, k], &values(cout * cin * k * k, cin * k * k, &mut seed)));
        inits.push(f32_tensor(&b, &[cout], &values(cout, cin * k * k, &mut seed)));
        let conv = format!("/features/features.{i}/Conv_output_0");
        let attrs = vec![
            attr_ints("dilations", &[1, 1]),
            attr_int("group", 1),
            attr_ints("kernel_shape", &[k as i64, k as i64]),
            attr_ints("pads", &[p as i64; 4]),
            attr_ints("strides", &[s as i64, s as i64]),
        ];
        nodes.push(node("Conv", &format!("/features/features.{i}/Conv"), &[&x, &w, &b], &conv, attrs));
        let relu = format!("/features/features.{}/Relu_output_0", i + 1);
        nodes.push(node("Relu", &format!("/features/features.{}/Relu", i + 1), &[&conv], &relu, vec![]));
        x = if [0, 1, 4].contains(&c) { pool(i + 2, &relu, &mut nodes) } else { relu };
    }
    let avg = "/avgpool/AveragePool_output_0";
    let mut a = vec![
        attr_ints("kernel_shape", &[1, 1]),
        attr_ints("strides", &[1, 1]),
        attr_ints("pads", &[0; 4]),
        attr_int("ceil_mode", 0),
    ];
    if newer {
        a.push(attr_int("count_include_pad", 0));
    }
    nodes.push(node("AveragePool", "/avgpool/AveragePool", &[&x], avg, a));
    let flat = "/Flatten_output_0";
    if newer {
        inits.push(i64_tensor("val_flatten_shape", &[1, 576]));
        nodes.push(node("Reshape", "node_view", &[avg, "val_flatten_shape"], flat, vec![]));
    } else {
        nodes.push(node("Flatten", "/Flatten", &[avg], flat, vec![attr_int("axis", 1)]));
    }
    x = flat.to_string();
    for (f, &(fin, fout)) in FCS.iter().enumerate() {
        let i = [1, 4, 6][f];
        let (w, b) = (format!("classifier.{i}.weight"), format!("classifier.{i}.bias"));
        inits.push(f32_tensor(&w, &[fout, fin], &values(fout * fin, fin, &mut seed)));
        inits.push(f32_tensor(&b, &[fout], &values(fout, fin, &mut seed)));
        let out =
            if f == 2 { "output".to_string() } else { format!("/classifier/classifier.{i}/Gemm_output_0") };
        if newer && f == 1 {
            let (t, m) = (format!("{w}_t"), format!("/classifier/classifier.{i}/MatMul_output_0"));
            nodes.push(node(
                "Transpose",
                &format!("node_t_{i}"),
                &[&w],
                &t,
                vec![attr_ints("perm", &[1, 0])],
            ));
            nodes.push(node("MatMul", &format!("node_linear_{i}"), &[&x, &t], &m, vec![]));
            nodes.push(node("Add", &format!("node_add_{i}"), &[&m, &b], &out, vec![]));
        } else {
            let attrs = vec![
                AttributeProto {
                    name: Some("alpha".into()),
                    r#type: Some(attribute_type::FLOAT),
                    f: Some(1.0),
                    ..Default::default()
                },
                attr_int("transB", 1),
            ];
            nodes.push(node("Gemm", &format!("/classifier/classifier.{i}/Gemm"), &[&x, &w, &b], &out, attrs));
        }
        x = out;
        if f < 2 {
            let relu = format!("/classifier/classifier.{}/Relu_output_0", i + 1);
            nodes.push(node("Relu", &format!("/classifier/classifier.{}/Relu", i + 1), &[&x], &relu, vec![]));
            x = relu;
        }
    }
    if newer {
        // The weights' bytes in one file beside the model, as the newer exporter writes them (small
        // tensors, such as the reshape's shape, stay inline, as onnx's writer keeps them).
        let data_name = format!("{}.data", path.file_name().unwrap().to_string_lossy());
        let mut data = Vec::new();
        for t in inits.iter_mut().filter(|t| t.data_type == Some(data_type::FLOAT)) {
            let raw = t.raw_data.take().unwrap();
            let entry = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
            t.external_data = vec![
                entry("location", data_name.clone()),
                entry("offset", data.len().to_string()),
                entry("length", raw.len().to_string()),
            ];
            t.data_location = Some(EXTERNAL);
            data.extend_from_slice(&raw);
        }
        std::fs::write(path.with_file_name(&data_name), data).unwrap();
    }
    let graph = GraphProto {
        node: nodes,
        name: Some(if newer { "main_graph" } else { "torch_jit" }.into()),
        initializer: inits,
        input: vec![info("input", &[Err("batch"), Ok(3), Ok(224), Ok(224)])],
        output: vec![info("output", &[Err("batch"), Ok(10)])],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(if newer { 18 } else { 17 }),
        }],
        producer_name: Some("pytorch".into()),
        producer_version: Some("(hand-built in the exporter's form)".into()),
        graph: Some(graph),
        ..Default::default()
    };
    std::fs::write(path, encode_model(&model)).unwrap();
}
