//! A small memory plan checked by hand: a 4x4 image, ReLU, flatten, a 2-way linear layer, for
//! inference at batch 1.

use alexc::ir::Mode;

#[test]
fn a_hand_checked_inference_plan() {
    let text = r#"Graph(name: "small", input: (name: "x", channels: 1, height: 4, width: 4), classes: 2,
        nodes: [
            (name: "relu", op: Relu, inputs: ["x"]),
            (name: "flat", op: Flatten, inputs: ["relu"]),
            (name: "fc", op: Linear(out_features: 2), inputs: ["flat"]),
        ],
        loss: SoftmaxCrossEntropy(logits: "fc"), optimizer: Sgd(lr: 0.1), training: (batch_size: 1, epochs: 1))"#;
    let plan = alexc::compile_str(text, "small.ron", Mode::Infer, 1).unwrap();
    let m = &plan.memory;
    // Schedule: relu (step 0), flat (1), fc = linear + bias_add fused (2).
    let names: Vec<&str> = plan.graph.schedule.iter().map(|&n| plan.graph.g[n].name.as_str()).collect();
    assert_eq!(names, ["relu", "flat", "fc.bias_add"]);
    let value = |name: &str| m.values.iter().find(|p| p.name == name).unwrap();
    // x: 16 floats, read last by relu, which may overwrite it; flat is a view of relu.
    assert_eq!((value("x").bytes, value("x").first, value("x").last), (64, 0, 0));
    assert_eq!((value("relu").first, value("relu").last), (0, 1));
    assert_eq!((value("flat").first, value("flat").last), (1, 2));
    assert_eq!(value("x").buffer, value("relu").buffer);
    assert_eq!(value("relu").buffer, value("flat").buffer);
    // The logits (2 floats) live to the end, read by the caller.
    assert_eq!(
        (value("fc.bias_add").bytes, value("fc.bias_add").first, value("fc.bias_add").last),
        (8, 2, 2)
    );
    assert_eq!(m.buffers.len(), 2);
    // Naive: x, relu and the logits in buffers of their own (the view holds none): 64 + 64 + 8.
    assert_eq!(m.naive_bytes, 136);
    // Step 2 holds the shared 64-byte buffer and the logits.
    assert_eq!(m.lower_bound_bytes, 72);
    // Each buffer rounds up to 256 bytes, and both are live at step 2.
    assert_eq!(m.arena_bytes, 512);
    // Persistent: fc.weight (2 x 16) and fc.bias (2), f32.
    assert_eq!(m.persistent_bytes, 4 * (32 + 2));
}
