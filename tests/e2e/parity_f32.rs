//! The runtime in f32 against PyTorch in float64 (see common/parity.rs).

#[path = "common/parity.rs"]
mod parity;

/// tiny.ron at batch 4: relative error at most 1e-4 (f32 rounding over sums of up to 1568
/// products).
#[test]
fn tiny_matches_pytorch_in_f32() {
    parity::parity("graphs/tiny.ron", "tests/fixtures/tiny.json", 1e-4);
}

/// alexnet.ron at batch 2 (the paper's LRN, grouped convolutions, overlapping pooling, 9216-wide
/// fully connected layers): relative error at most 1e-4.
#[test]
fn alexnet_matches_pytorch_in_f32() {
    parity::parity("graphs/alexnet.ron", "tests/fixtures/alexnet.json", 1e-4);
}
