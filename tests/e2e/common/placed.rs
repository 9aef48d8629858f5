//! The placed step against the one-device step (shared by `placed_f32.rs` and `placed_f64.rs`,
//! which set the CPU's precision first): tiny.ron compiled with `--devices 2` and run on two
//! Flex devices gives the loss, logits, every parameter gradient and every updated parameter and
//! momentum of tiny.ron on one device, for two steps, and the same evaluation logits after them.

use alexc::ir::Mode;
use alexc::plan::Plan;
use alexrt::data::{Dataset, Synthetic};
use alexrt::exec::Executor;
use alexrt::Cpu;

pub fn tiny_plan(devices: u8) -> Plan {
    let text = include_str!("../../../graphs/tiny.ron");
    let checked = alexc::front_end_str(text, "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lowering = alexc::Lowering { devices, ..Default::default() };
    alexc::lower_with(&checked, Mode::Train, 4, &lowering, &mut |_, _, _| {})
        .unwrap()
        .into_plan(Mode::Train, "tiny.ron")
}

/// Runs two steps both ways and checks every figure to relative error `tol`.
pub fn placed_step_equals_one_device_step(tol: f64) {
    let (one, two) = (tiny_plan(1), tiny_plan(2));
    assert_eq!(two.graph.devices, 2);
    // The input stays on the host; each device fetches it again for conv1's weight gradient.
    assert!(two.graph.find("image@d0/refetch").is_some() && two.graph.find("image@d1/refetch").is_some());
    let mut execs = [
        Executor::<Cpu>::new(&one, Default::default()).unwrap(),
        Executor::<Cpu>::new_on(&two, vec![Default::default(); 2]).unwrap(),
    ];
    for e in &mut execs {
        e.options.dropout = false;
        e.options.capture_gradients = true;
    }
    let data = Synthetic::new([3, 31, 31], 10, 16, 5, "train");
    let close = |what: &str, a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + x.abs()), "{what}[{i}]: {x} one device, {y} two");
        }
    };
    for step in 0..2 {
        let (batch, _) = data.batch(&(step * 4..step * 4 + 4).collect::<Vec<_>>(), None);
        let a = execs[0].step(&batch, 0.01).unwrap();
        let b = execs[1].step(&batch, 0.01).unwrap();
        close("loss", &[a.loss.unwrap()], &[b.loss.unwrap()]);
        close("logits", &a.logits, &b.logits);
        assert_eq!(a.gradients.len(), b.gradients.len());
        for (name, g) in &a.gradients {
            close(&format!("gradient of {name}"), g, &b.gradients[name]);
        }
    }
    // Evaluation (the forward pass alone) reads the input from the host too.
    let (batch, _) = data.batch(&(8..12).collect::<Vec<_>>(), None);
    let (a, b) = (execs[0].forward(&batch).unwrap(), execs[1].forward(&batch).unwrap());
    close("evaluation logits", &a.logits, &b.logits);
    for (name, _) in execs[0].persistent_names() {
        let p = execs[0].persistent_values_f64(&name).unwrap().unwrap();
        let q = execs[1].persistent_values_f64(&name).unwrap().unwrap();
        close(&name, &p, &q);
    }
}
