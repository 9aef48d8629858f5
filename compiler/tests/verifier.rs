//! The verifier after a pass: every broken invariant is reported at once, each naming the pass
//! that left it and the node, as an internal error (a compiler bug, not the input's fault).

use alexc::diag::Severity;
use alexc::ir::{Graph, Mode, TensorType};
use alexc::passes::{verify_after, PassName};
use petgraph::visit::EdgeRef;

fn tiny_after(pass: PassName) -> Graph {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/tiny.ron");
    let mut found = None;
    let mut hook = |p: PassName, g: &Graph, _: Option<&alexc::passes::MemoryPlan>| {
        if p == pass {
            found = Some(g.clone());
        }
    };
    let checked = alexc::front_end(&path, &mut hook).unwrap();
    alexc::lower(&checked, Mode::Train, 4, &mut hook).unwrap();
    found.expect("the pass ran")
}

#[test]
fn the_ir_every_pass_leaves_passes_the_verifier() {
    for pass in
        [PassName::Build, PassName::InferShapes, PassName::Autodiff, PassName::Fuse, PassName::Schedule]
    {
        let graph = tiny_after(pass);
        let d = verify_after(pass, &graph, &[]);
        assert!(d.0.is_empty(), "after {}: {d}", pass.as_str());
    }
}

#[test]
fn every_violation_is_reported_at_once_with_the_pass_and_the_node() {
    let mut graph = tiny_after(PassName::Fuse);
    // Three breakages: a node loses an input, another holds a wrong type, a third moves to a
    // device the graph does not have.
    let relu3 = graph.find("relu3").expect("tiny has relu3");
    let edge = graph.g.edges_directed(relu3, petgraph::Direction::Incoming).next().unwrap().id();
    graph.g.remove_edge(edge);
    let pool1 = graph.find("pool1").unwrap();
    graph.g[pool1].outputs[0] = TensorType::batched(alexc::ir::DType::F32, vec![1, 2, 3]);
    let flatten = graph.find("flatten").unwrap();
    graph.g[flatten].device = 3;
    let d = verify_after(PassName::Fuse, &graph, &[]);
    let text = d.to_string();
    assert!(d.0.len() >= 3, "{text}");
    assert!(d.0.iter().all(|x| x.severity == Severity::Internal), "{text}");
    assert!(d.0.iter().all(|x| x.message.starts_with("after the `fuse` pass, ")), "{text}");
    for (node, what) in [("relu3", "input(s), but its op takes"), ("flatten", "runs on device 3")] {
        assert!(
            d.0.iter().any(|x| x.node.as_deref() == Some(node) && x.message.contains(what)),
            "no `{what}` for {node} in:\n{text}"
        );
    }
    assert!(text.contains("(`pool1`)") || text.contains("`pool1`"), "{text}");
}

#[test]
fn a_broken_schedule_is_caught_after_the_schedule_pass_and_not_before() {
    let mut graph = tiny_after(PassName::Schedule);
    let last = graph.schedule.pop().unwrap();
    graph.schedule.insert(0, last);
    let d = verify_after(PassName::Schedule, &graph, &[]);
    assert!(d.to_string().contains("runs before its input"), "{d}");
    // Before the schedule pass, a schedule is itself the violation.
    let d = verify_after(PassName::Fuse, &graph, &[]);
    assert!(d.to_string().contains("is set before the schedule pass ran"), "{d}");
}
