//! The command line: memory limits, batch sizes, dumps, Graphviz, inference plans.

mod common;
use common::*;

#[test]
fn memory_limit_that_does_not_fit_names_the_need() {
    let o = alexc(&[
        "compile",
        "graphs/alexnet.ron",
        "--batch-size",
        "128",
        "--memory-limit",
        "1GiB",
        "-o",
        "/dev/null",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("the training step at batch 128 needs"), "{err}");
    assert!(err.contains("over the 1.00 GiB limit"), "{err}");
    assert!(err.contains("a batch of at most"), "{err}");
}

#[test]
fn batch_size_max_picks_the_largest_batch_that_fits() {
    let dir = scratch("max");
    let plan = dir.join("plan.bin");
    let o = alexc(&[
        "compile",
        "graphs/alexnet.ron",
        "--batch-size",
        "max",
        "--memory-limit",
        "2GiB",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = alexc::plan::Plan::read(&plan).unwrap();
    let limit = 2u64 << 30;
    let b = p.memory.batch_size;
    assert!(b > 1);
    assert!(p.memory.total_bytes() as u64 <= limit);
    // One more does not fit.
    let o = alexc(&[
        "compile",
        "graphs/alexnet.ron",
        "--batch-size",
        &(b + 1).to_string(),
        "--memory-limit",
        "2GiB",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(o.status.code(), Some(2), "batch {} should not fit: {}", b + 1, stderr(&o));
    assert!(stderr(&o).contains(&format!("a batch of at most {b} fits")), "{}", stderr(&o));
}

#[test]
fn emit_dot_writes_graphviz() {
    let dir = scratch("dot");
    let out = dir.join("tiny.dot");
    let o = alexc(&["compile", "graphs/tiny.ron", "--emit", "dot", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = std::fs::read_to_string(out).unwrap();
    assert!(dot.starts_with("digraph \"tiny\" {"));
    assert!(dot.contains("conv2d") && dot.contains("->") && dot.trim_end().ends_with('}'));
}

#[test]
fn inference_plans_have_no_backward_or_update() {
    let o = alexc(&[
        "compile",
        "graphs/tiny.ron",
        "--mode",
        "infer",
        "--dump-after",
        "schedule",
        "-o",
        "/dev/null",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("fused(image, conv1.weight, conv1.bias) [conv2d"), "{text}");
    for absent in ["grad", "sgd_update", "labels", "softmax_cross_entropy", "momentum"] {
        assert!(!text.contains(absent), "{absent} in an inference plan:\n{text}");
    }
}

#[test]
fn dump_after_all_prints_every_pass_in_order() {
    let o = alexc(&["compile", "graphs/tiny.ron", "--dump-after", "all", "-o", "/dev/null"]);
    assert!(o.status.success());
    let text = stdout(&o);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("graph tiny // after ")).collect();
    let passes: Vec<&str> = headers.iter().map(|h| h.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        passes,
        [
            "build",
            "validate",
            "infer-shapes",
            "autodiff",
            "conv-algo",
            "precision",
            "fuse",
            "schedule",
            "memory"
        ]
    );
}

#[test]
fn a_closed_stdout_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexc"))
        .args(["compile", "graphs/alexnet.ron", "--dump-after", "all", "-o", "/dev/null"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let o = child.wait_with_output().unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn writing_to_a_device_writes_through_it() {
    use std::os::unix::fs::FileTypeExt;
    let o = alexc(&["compile", "graphs/tiny.ron", "-o", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null must not be renamed over");
}

#[test]
fn conv_algo_records_an_algorithm_per_convolution_and_a_forced_one_warns_where_it_cannot_apply() {
    let o = alexc(&["compile", "graphs/alexnet.ron", "--dump-after", "conv-algo", "-o", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let convs: Vec<&str> = text.lines().filter(|l| l.contains("conv2d")).collect();
    // Five forward convolutions, five weight gradients, four data gradients (conv1's input is the image).
    assert_eq!(convs.len(), 14, "{text}");
    assert!(convs.iter().all(|l| l.contains("algo=im2col-gemm")), "{text}");

    let o = alexc(&[
        "compile",
        "graphs/alexnet.ron",
        "--conv-algo",
        "winograd",
        "--dump-after",
        "conv-algo",
        "-o",
        "/dev/null",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let winograd = text.lines().filter(|l| l.contains("algo=winograd")).count();
    // conv3-conv5 forward and data gradients are 3x3 stride 1.
    assert_eq!(winograd, 6, "{text}");
    let err = stderr(&o);
    assert!(err.contains("--conv-algo winograd cannot compute the weight gradient of `conv1/"), "{err}");
    assert!(err.contains("it uses im2col-gemm"), "{err}");

    let o = alexc(&["compile", "graphs/tiny.ron", "--conv-algo", "fft", "-o", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown convolution algorithm `fft`; use auto, im2col-gemm, winograd, burn"));
}
