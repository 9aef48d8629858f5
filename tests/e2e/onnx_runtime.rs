//! ONNX against onnxruntime (PyPI's `onnx` and `onnxruntime`, in the venv of
//! tests/requirements.txt; SKIPPED without them): every shipped graph's export passes
//! `onnx.checker.check_model(full_check=True)` and onnxruntime's logits equal `alexrt infer
//! --json --logits`'s on the same images to 1e-4 of the logits' scale; torchvision's AlexNet
//! (narrowed) in both exporters' op forms imports, compiles, and equals onnxruntime on the
//! original model; torch's own exports (scripts/make-onnx-fixtures.py), where present, equal
//! PyTorch's logits.

mod common {
    pub mod python;
    pub mod torch_onnx;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use alexc::catalog::Op;
use alexc::ir::Mode;
use alexc::onnx::weights;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alexnet-onnx-rt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// An inference plan of `graph` (batch 1), its path.
fn plan(graph: &Path, dir: &Path) -> PathBuf {
    let checked = alexc::front_end(graph, &mut |_, _, _| {}).unwrap();
    let plan = alexc::lower(&checked, Mode::Infer, 1, &mut |_, _, _| {}).unwrap().into_plan(Mode::Infer, "g");
    let path = dir.join("plan.bin");
    plan.write(&path).unwrap();
    path
}

/// Seeded weights for `graph`, uniform within +-1/sqrt(fan_in) (activations of order one).
fn random_weights(graph: &Path, out: &Path) {
    let checked = alexc::front_end(graph, &mut |_, _, _| {}).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut tensors = Vec::new();
    for n in checked.graph.node_indices() {
        if let Op::Param(p) = &checked.graph.g[n].op {
            let bound = 1.0 / (p.fan_in as f32).sqrt();
            let values = (0..p.shape.iter().product::<usize>())
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
                })
                .collect();
            tensors.push((checked.graph.g[n].name.clone(), p.shape.clone(), values));
        }
    }
    std::fs::write(out, weights::to_bytes(&tensors, Default::default()).unwrap()).unwrap();
}

/// Two seeded RGB images of `side` x `side` (PNG: what is read is what was written).
fn images(dir: &Path, side: u32) -> Vec<PathBuf> {
    (0..2u32)
        .map(|i| {
            let img = image::RgbImage::from_fn(side, side, |x, y| {
                let v = (x * 7 + y * 13 + i * 101) as u8;
                image::Rgb([
                    v,
                    v.wrapping_mul(3).wrapping_add(x as u8),
                    (y as u8).wrapping_mul(5) ^ (i as u8 * 40),
                ])
            });
            let path = dir.join(format!("image{i}.png"));
            img.save(&path).unwrap();
            path
        })
        .collect()
}

/// `alexrt infer --json --logits` of `plan` with `weights` on `images`: one logits row each.
fn alexrt_logits(plan: &Path, weights: &Path, images: &[PathBuf]) -> Vec<Vec<f64>> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"));
    cmd.args([
        "infer",
        plan.to_str().unwrap(),
        "--device",
        "cpu",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        "--logits",
    ]);
    cmd.args(images);
    let doc: serde_json::Value = serde_json::from_str(&run(&mut cmd)).unwrap();
    let rows = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| serde_json::from_value(i["logits"].clone()).unwrap());
    rows.collect()
}

/// onnxruntime's logits of `model` on `images` (after the full ONNX check); `preprocess` when the
/// model carries no preprocessing metadata.
fn onnxruntime_logits(python: &Path, model: &Path, preprocess: &[&str], images: &[PathBuf]) -> Vec<Vec<f64>> {
    let mut cmd = Command::new(python);
    cmd.arg(common::python::script("onnx_check.py")).arg(model).args(preprocess).args(images);
    let doc: serde_json::Value = serde_json::from_str(&run(&mut cmd)).unwrap();
    assert_eq!(doc["checked"], true);
    serde_json::from_value(doc["logits"].clone()).unwrap()
}

/// The largest difference relative to the largest logit of `want`.
fn relative_error(got: &[Vec<f64>], want: &[Vec<f64>]) -> f64 {
    let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got.iter().flatten().zip(want.iter().flatten()).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), want.iter().map(Vec::len).collect::<Vec<_>>());
    diff / scale
}

#[test]
fn every_shipped_graphs_export_passes_the_full_check_and_matches_onnxruntime() {
    let python =
        python_or_skip!("onnx_runtime::every_shipped_graphs_export", &["onnx", "onnxruntime", "PIL"]);
    for (name, side) in [("tiny", 31), ("alexnet", 256), ("caffenet", 256), ("torchvision_alexnet", 256)] {
        let dir = scratch(name);
        let graph = root().join("graphs").join(format!("{name}.ron"));
        let (w, model) = (dir.join("w.safetensors"), dir.join("model.onnx"));
        random_weights(&graph, &w);
        alexc::onnx::export_file(&graph, &w, None, &model).unwrap();
        let imgs = images(&dir, side);
        let got = alexrt_logits(&plan(&graph, &dir), &w, &imgs);
        let want = onnxruntime_logits(&python, &model, &[], &imgs);
        let err = relative_error(&got, &want);
        eprintln!("{name}: alexrt vs onnxruntime, max error {err:.2e} of the logits' scale");
        assert!(err <= 1e-4, "{name}: {err:e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn torchvision_alexnet_in_both_exporters_forms_imports_compiles_and_matches_onnxruntime() {
    let python = python_or_skip!(
        "onnx_runtime::torchvision_alexnet_in_both_exporters_forms",
        &["onnx", "onnxruntime", "PIL"]
    );
    for newer in [false, true] {
        let dir = scratch(if newer { "dynamo" } else { "torchscript" });
        let model = dir.join("alexnet.onnx");
        common::torch_onnx::write(&model, newer);
        let (graph, w) = (dir.join("alexnet.ron"), dir.join("alexnet.safetensors"));
        alexc::onnx::import_file(&model, &graph, Some(&w)).unwrap();
        let text = std::fs::read_to_string(&graph).unwrap();
        assert!(
            text.contains(
                "(name: \"features_0\", op: Conv2d(out_channels: 8, kernel: 11, stride: 4, padding: 2)"
            ),
            "{text}"
        );
        assert!(!text.contains("avgpool"), "the 1x1 average pooling is an identity: {text}");
        let imgs = images(&dir, 224);
        let got = alexrt_logits(&plan(&graph, &dir), &w, &imgs);
        let imagenet = ["--no-metadata", "123.675,116.28,103.53", "58.395,57.12,57.375", "224"];
        let want = onnxruntime_logits(&python, &model, &imagenet, &imgs);
        let err = relative_error(&got, &want);
        eprintln!(
            "newer exporter's form {newer}: alexrt vs onnxruntime, max error {err:.2e} of the logits' scale"
        );
        assert!(err <= 1e-4, "{err:e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn torchs_own_exports_of_torchvision_alexnet_import_and_match_pytorch() {
    let test = "onnx_runtime::torchs_own_exports_of_torchvision_alexnet";
    let fixtures = root().join("tests/fixtures/onnx");
    let reference = fixtures.join("pytorch.json");
    if !reference.is_file() {
        eprintln!(
            "SKIPPED: {test}: {} holds no exports by torch (scripts/make-onnx-fixtures.py makes them where torch's CPU wheel installs; CI never installs torch)",
            fixtures.display()
        );
        return;
    }
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let want: Vec<Vec<f64>> = serde_json::from_value(doc["logits"].clone()).unwrap();
    let imgs: Vec<PathBuf> =
        doc["images"].as_array().unwrap().iter().map(|i| fixtures.join(i.as_str().unwrap())).collect();
    for name in ["alexnet_torchscript.onnx", "alexnet_dynamo.onnx"] {
        let dir = scratch(name);
        let (graph, w) = (dir.join("alexnet.ron"), dir.join("alexnet.safetensors"));
        alexc::onnx::import_file(&fixtures.join(name), &graph, Some(&w)).unwrap();
        let err = relative_error(&alexrt_logits(&plan(&graph, &dir), &w, &imgs), &want);
        eprintln!(
            "{name} (torch {}): alexrt vs PyTorch, max error {err:.2e} of the logits' scale",
            doc["torch"]
        );
        assert!(err <= 1e-4, "{name}: {err:e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
