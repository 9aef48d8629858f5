//! The figures the compiler reports for the paper's network, and its warnings.

mod common;
use common::*;

fn json(args: &[&str]) -> serde_json::Value {
    let o = alexc(args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object on stdout")
}

#[test]
fn alexnet_report_has_the_papers_figures() {
    let r = json(&[
        "compile",
        "graphs/alexnet.ron",
        "--batch-size",
        "128",
        "--report",
        "json",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(r["graph"], "alexnet");
    assert_eq!(r["parameters"], 60_965_224);
    let macs = r["macs_per_image"].as_u64().unwrap();
    assert_eq!(macs, 724_406_816, "about 724 M multiply-adds per image");
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{}", r["warnings"]);

    let shapes: Vec<(String, Vec<u64>)> = r["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let shape = l["output_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
            (l["name"].as_str().unwrap().to_string(), shape)
        })
        .collect();
    let want: &[(&str, &[u64])] = &[
        ("conv1", &[96, 55, 55]),
        ("pool1", &[96, 27, 27]),
        ("conv2", &[256, 27, 27]),
        ("pool2", &[256, 13, 13]),
        ("conv3", &[384, 13, 13]),
        ("conv4", &[384, 13, 13]),
        ("conv5", &[256, 13, 13]),
        ("pool5", &[256, 6, 6]),
        ("fc6", &[4096]),
        ("fc7", &[4096]),
        ("fc8", &[1000]),
    ];
    for (name, shape) in want {
        let got = shapes.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no layer {name}"));
        assert_eq!(got.1, *shape, "{name}");
    }
    let per_layer: u64 =
        r["layers"].as_array().unwrap().iter().map(|l| l["parameters"].as_u64().unwrap()).sum();
    assert_eq!(per_layer, 60_965_224);
    assert!(r["activation_bytes_per_image"].as_u64().unwrap() > 4 * (96 * 55 * 55 * 3));
}

#[test]
fn alexnet_memory_plan_is_within_5_percent_of_the_lower_bound() {
    let r = json(&[
        "compile",
        "graphs/alexnet.ron",
        "--batch-size",
        "128",
        "--report",
        "json",
        "-o",
        "/dev/null",
    ]);
    for mode in ["train", "infer"] {
        let m = &r["memory"][mode];
        let (naive, lower, arena) = (
            m["naive_bytes"].as_u64().unwrap(),
            m["lower_bound_bytes"].as_u64().unwrap(),
            m["arena_bytes"].as_u64().unwrap(),
        );
        assert!(lower <= arena, "{mode}: the arena is never below the lower bound");
        assert!((arena as f64) <= 1.05 * lower as f64, "{mode}: arena {arena} vs lower bound {lower}");
        assert!(arena < naive, "{mode}: planning saves memory");
        assert_eq!(m["batch_size"], 128);
    }
    // Parameters and momentum are persistent: 2 x 4 bytes x 60,965,224.
    assert_eq!(r["memory"]["train"]["persistent_bytes"], 2 * 4 * 60_965_224u64);
    assert_eq!(r["memory"]["infer"]["persistent_bytes"], 4 * 60_965_224u64);
    let (before, after) =
        (r["nodes_before_fusion"].as_u64().unwrap(), r["nodes_after_fusion"].as_u64().unwrap());
    assert!(after < before, "fusion removes nodes: {before} -> {after}");
}

#[test]
fn a_224_input_warns_that_the_window_does_not_tile() {
    let dir = scratch("224");
    let src = std::fs::read_to_string(root().join("graphs/alexnet.ron")).unwrap();
    let src = src.replace("height: 227, width: 227", "height: 224, width: 224");
    let path = dir.join("alexnet224.ron");
    std::fs::write(&path, src).unwrap();
    let o = alexc(&["compile", path.to_str().unwrap(), "--report", "json", "-o", "/dev/null"]);
    assert!(o.status.success(), "a warning is not an error: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("warning in node `conv1`"), "{err}");
    assert!(err.contains("(224 + 2*0 - 11) / 4 + 1 = 54.25"), "the arithmetic: {err}");
    assert!(err.contains("help: make the height 223 (or 227)"), "the fix: {err}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["warnings"][0].as_str().unwrap().contains("conv1"));
}

#[test]
fn summary_table_lists_every_layer() {
    let o = alexc(&["summary", "graphs/alexnet.ron"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("60,965,224"), "{text}");
    assert!(text.contains("724,406,816"), "{text}");
    for layer in ["conv1", "norm1", "pool5", "fc8"] {
        assert!(text.lines().any(|l| l.starts_with(layer)), "{layer}: {text}");
    }
}
