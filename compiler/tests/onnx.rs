//! ONNX export and import without Python: every shipped graph's export imports back into a graph
//! that compiles to the same plan (both modes) with the same weights; a plan exports as its graph
//! file does (fused nodes written back as their parts); what the graph language cannot express is
//! refused with the node, the attribute and the fix, exit status 2 and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

use alexc::catalog::Op;
use alexc::ir::{print_graph, Mode};
use alexc::memory::memory_table;
use alexc::onnx::proto::*;
use alexc::onnx::{export_file, import_file, weights};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alexc-onnx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Seeded values in [-0.05, 0.05] for every parameter of `graph`, as a weights file.
fn random_weights(graph: &Path, out: &Path) {
    let checked = alexc::front_end(graph, &mut |_, _, _| {}).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut tensors = Vec::new();
    for n in checked.graph.node_indices() {
        if let Op::Param(p) = &checked.graph.g[n].op {
            let values = (0..p.shape.iter().product::<usize>())
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
                })
                .collect();
            tensors.push((checked.graph.g[n].name.clone(), p.shape.clone(), values));
        }
    }
    std::fs::write(out, weights::to_bytes(&tensors, Default::default()).unwrap()).unwrap();
}

/// A graph file's plan in `mode` as text: the IR and its memory table.
fn plan_text(graph: &Path, mode: Mode) -> String {
    let checked = alexc::front_end(graph, &mut |_, _, _| {}).unwrap();
    let lowered = alexc::lower(&checked, mode, 2, &mut |_, _, _| {}).unwrap();
    format!("{}{}", print_graph(&lowered.graph, "memory"), memory_table(&lowered.memory))
}

fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut t: Vec<_> =
        st.tensors().into_iter().map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec())).collect();
    t.sort();
    t
}

#[test]
fn every_shipped_graph_round_trips_through_onnx_to_the_same_plan_and_weights() {
    for name in ["tiny", "alexnet", "caffenet", "torchvision_alexnet"] {
        let dir = scratch(name);
        let graph = root().join("graphs").join(format!("{name}.ron"));
        let (w, model, back, back_w) = (
            dir.join("w.safetensors"),
            dir.join("m.onnx"),
            dir.join("back.ron"),
            dir.join("back.safetensors"),
        );
        random_weights(&graph, &w);
        export_file(&graph, &w, None, &model).unwrap();
        let summary = import_file(&model, &back, Some(&back_w)).unwrap();
        assert!(summary.warnings.is_empty(), "{name}: {:?}", summary.warnings);
        for mode in [Mode::Infer, Mode::Train] {
            assert_eq!(
                plan_text(&back, mode),
                plan_text(&graph, mode),
                "{name}: the imported graph's {mode:?} plan"
            );
        }
        assert_eq!(
            tensors(&back_w),
            tensors(&w),
            "{name}: the imported weights are the exported ones, bit for bit"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_plan_exports_as_its_graph_file_does_with_fused_nodes_as_their_parts() {
    let dir = scratch("plan");
    let graph = root().join("graphs/alexnet.ron");
    let w = dir.join("w.safetensors");
    random_weights(&graph, &w);
    let checked = alexc::front_end(&graph, &mut |_, _, _| {}).unwrap();
    for mode in [Mode::Infer, Mode::Train] {
        let plan = alexc::lower(&checked, mode, 4, &mut |_, _, _| {}).unwrap().into_plan(mode, "alexnet.ron");
        assert!(
            plan.graph.g.node_weights().any(|n| matches!(n.op, Op::Fused(_))),
            "the plan has fused nodes"
        );
        plan.write(&dir.join("plan.bin")).unwrap();
        export_file(&dir.join("plan.bin"), &w, None, &dir.join("from_plan.onnx")).unwrap();
        export_file(&graph, &w, None, &dir.join("from_graph.onnx")).unwrap();
        let read = |f: &str| {
            let mut m = decode_model(&std::fs::read(dir.join(f)).unwrap()).unwrap();
            m.doc_string = None;
            m
        };
        let (p, g) = (read("from_plan.onnx"), read("from_graph.onnx"));
        let ops: Vec<_> = p.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.clone().unwrap()).collect();
        assert!(ops.contains(&"LRN".to_string()) && !ops.contains(&"Dropout".to_string()), "{ops:?}");
        for (a, b) in p.metadata_props.iter().zip(&g.metadata_props) {
            assert_eq!(a, b, "{mode:?}: the metadata");
        }
        assert_eq!(p.metadata_props.len(), g.metadata_props.len());
        let (pg, gg) = (p.graph.unwrap(), g.graph.unwrap());
        assert_eq!(pg.node, gg.node, "{mode:?}: the plan's nodes differ from the graph file's");
        assert_eq!((pg.input, pg.output), (gg.input, gg.output));
        assert!(pg.initializer == gg.initializer, "{mode:?}: the initializers differ");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn alexc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alexc")).args(args).output().unwrap()
}

fn tensor_info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
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

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A one-convolution model (input 3x8x8, conv 4x3x3 with `pads`, flatten, gemm to 2) whose
/// convolution node is `conv`, with `extra` nodes after the convolution.
fn small_model(input_h: Result<i64, &str>, pads: &[i64], conv_op: &str) -> ModelProto {
    let side = 8 + 2 * pads[0].max(0) as usize - 2;
    let f = |n: &str, dims: &[usize]| {
        alexc::onnx::tensor::f32_tensor(n, dims, &vec![0.01; dims.iter().product()])
    };
    let node = |op: &str, name: &str, ins: &[&str], out: &str, attrs: Vec<AttributeProto>| NodeProto {
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        name: Some(name.into()),
        op_type: Some(op.into()),
        attribute: attrs,
        ..Default::default()
    };
    let graph = GraphProto {
        node: vec![
            node(
                conv_op,
                "/features/features.0/Conv",
                &["x", "c.weight", "c.bias"],
                "c",
                vec![ints("kernel_shape", &[3, 3]), ints("pads", pads)],
            ),
            node("Flatten", "/Flatten", &["c"], "f", vec![]),
            node(
                "Gemm",
                "/fc/Gemm",
                &["f", "fc.weight"],
                "y",
                vec![AttributeProto {
                    name: Some("transB".into()),
                    r#type: Some(attribute_type::INT),
                    i: Some(1),
                    ..Default::default()
                }],
            ),
        ],
        name: Some("small".into()),
        initializer: vec![
            f("c.weight", &[4, 3, 3, 3]),
            f("c.bias", &[4]),
            f("fc.weight", &[2, 4 * side * side]),
        ],
        input: vec![tensor_info("x", &[Err("batch"), Ok(3), input_h, Ok(8)])],
        output: vec![tensor_info("y", &[Err("batch"), Ok(2)])],
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
        graph: Some(graph),
        ..Default::default()
    }
}

#[test]
fn a_model_the_graph_language_cannot_express_is_refused_by_node_and_attribute_with_nothing_written() {
    let dir = scratch("refused");
    let cases: [(ModelProto, &[&str]); 4] = [
        (
            small_model(Ok(8), &[0, 0, 1, 1], "Conv"),
            &["`/features/features.0/Conv` (Conv)", "`pads`", "asymmetric", "symmetric"],
        ),
        (small_model(Err("height"), &[0, 0, 0, 0], "Conv"), &["dimension 2", "dynamic", "fixed input size"]),
        (
            small_model(Ok(8), &[0, 0, 0, 0], "ConvTranspose"),
            &["(ConvTranspose)", "no counterpart", "alexc imports Conv"],
        ),
        (small_model(Ok(2), &[0, 0, 0, 0], "Conv"), &["(Conv)", "larger than its"]),
    ];
    for (i, (model, expected)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("case{i}.onnx"));
        std::fs::write(&path, encode_model(&model)).unwrap();
        let out = dir.join(format!("case{i}.ron"));
        let o = alexc(&[
            "import",
            path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--weights",
            dir.join("w").to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for e in expected {
            assert!(err.contains(e), "case {i}: `{e}` not in:\n{err}");
        }
        assert!(!out.exists() && !dir.join("w").exists(), "case {i}: nothing is written");
    }
    // The same model with symmetric pads imports, its layers named after its weights.
    let path = dir.join("ok.onnx");
    std::fs::write(&path, encode_model(&small_model(Ok(8), &[1, 1, 1, 1], "Conv"))).unwrap();
    let out = dir.join("ok.ron");
    let o = alexc(&["import", path.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("(name: \"c\", op: Conv2d(out_channels: 4, kernel: 3, padding: 1)"), "{text}");
    assert!(text.contains("(name: \"fc\", op: Linear(out_features: 2, use_bias: false)"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_refuses_weights_that_do_not_fit_the_graph_naming_the_tensor() {
    let dir = scratch("badweights");
    let w = dir.join("w.safetensors");
    let t = vec![("conv1.weight".to_string(), vec![2, 2], vec![0.0f32; 4])];
    std::fs::write(&w, weights::to_bytes(&t, Default::default()).unwrap()).unwrap();
    let out = dir.join("m.onnx");
    let graph = root().join("graphs/tiny.ron");
    let o = alexc(&[
        "export",
        graph.to_str().unwrap(),
        "--weights",
        w.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`conv1.weight` has shape [2, 2], the graph needs [16, 3, 5, 5]"), "{err}");
    assert!(!out.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
