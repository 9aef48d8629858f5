//! plan.bin: written by `alexc compile`, read back by `alexc inspect`; bad plan files get a
//! one-line error and exit status 2.

mod common;
use common::*;

use alexc::plan::{Plan, FORMAT_VERSION, MAGIC};

fn compile_tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("plan.bin");
    let o = alexc(&["compile", "graphs/tiny.ron", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

#[test]
fn plan_round_trips_and_inspects_as_the_dump_text() {
    let dir = scratch("roundtrip");
    let plan_path = compile_tiny(&dir);
    let bytes = std::fs::read(&plan_path).unwrap();
    assert_eq!(&bytes[..8], MAGIC);
    let plan = Plan::from_bytes(&bytes, "plan.bin").unwrap();
    assert_eq!(plan.to_bytes(), bytes, "decoding and encoding again gives the same bytes");
    assert_eq!(plan.graph.name, "tiny");
    assert_eq!(plan.memory.batch_size, 32);

    let inspect = alexc(&["inspect", plan_path.to_str().unwrap()]);
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let dump = alexc(&[
        "compile",
        "graphs/tiny.ron",
        "-o",
        dir.join("again.bin").to_str().unwrap(),
        "--dump-after",
        "memory",
    ]);
    let inspected = stdout(&inspect);
    let (_, body) = inspected.split_once('\n').unwrap();
    assert_eq!(body, stdout(&dump), "inspect prints the plan as the memory dump prints it");
}

#[test]
fn bad_plan_files_get_one_line_errors() {
    let dir = scratch("badplans");
    let good = std::fs::read(compile_tiny(&dir)).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "not an alexc plan file"),
        ("foreign", b"PK\x03\x04 this is a zip file, not a plan".to_vec(), "not an alexc plan file"),
        ("header-only", good[..12].to_vec(), "truncated"),
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
    ];
    let mut corrupted = good.clone();
    let mid = 24 + (good.len() - 24) / 2;
    corrupted[mid] ^= 0x55;
    cases.push(("corrupted", corrupted, "corrupted (checksum mismatch)"));
    let mut wrong_version = good.clone();
    wrong_version[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    cases.push(("version", wrong_version, "plan format version"));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    cases.push(("trailing", trailing, "corrupted"));
    for (name, bytes, fragment) in cases {
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, bytes).unwrap();
        let o = alexc(&["inspect", path.to_str().unwrap()]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(fragment), "{name}: expected `{fragment}` in {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{name}: one line: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    for missing in [dir.join("absent.bin"), dir.clone()] {
        let o = alexc(&["inspect", missing.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim_end().lines().count(), 1);
    }
}

#[test]
fn a_failed_compile_leaves_the_previous_plan_intact() {
    let dir = scratch("atomic");
    let plan_path = compile_tiny(&dir);
    let before = std::fs::read(&plan_path).unwrap();
    let o = alexc(&["compile", "tests/malformed/bad-groups.ron", "-o", plan_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&plan_path).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let o = alexc(&["compile", "graphs/tiny.ron", "-o", "/nonexistent-dir/plan.bin"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent-dir/plan.bin: cannot write the plan file"), "{}", stderr(&o));
}

/// A plan whose checksum is right but whose contents do not hold together is refused with what is
/// wrong, before any runtime sees it: one case per class of inconsistency the reader checks.
#[test]
fn inconsistent_plans_are_refused_with_what_is_wrong() {
    use alexc::ir::{Mode, ValueRef};
    use petgraph::stable_graph::NodeIndex;
    use petgraph::visit::EdgeRef;

    let text = std::fs::read_to_string(root().join("graphs/tiny.ron")).unwrap();
    let good = alexc::compile_str(&text, "tiny.ron", Mode::Train, 2).unwrap();
    Plan::from_bytes(&good.to_bytes(), "plan.bin").expect("a plan the compiler writes passes the check");
    let two_inputs = |p: &Plan| {
        p.graph.schedule.iter().copied().find(|&n| p.graph.inputs(n).len() == 2).expect("a two-input node")
    };
    type Damage = fn(&mut Plan, NodeIndex);
    let cases: Vec<(&str, Damage, &str)> = vec![
        ("repeated step", |p, _| p.graph.schedule.push(p.graph.schedule[0]), "twice"),
        (
            "missing step",
            |p, _| {
                p.graph.schedule.pop();
            },
            "the schedule never runs",
        ),
        ("reversed schedule", |p, _| p.graph.schedule.reverse(), "before its input"),
        (
            "missing input",
            |p, n| {
                let e = p
                    .graph
                    .g
                    .edges_directed(n, petgraph::Direction::Incoming)
                    .max_by_key(|e| e.weight().dst_port);
                let id = e.unwrap().id();
                p.graph.g.remove_edge(id);
            },
            "but its op takes 2",
        ),
        (
            "port out of range",
            |p, n| {
                let id = p.graph.g.edges_directed(n, petgraph::Direction::Incoming).next().unwrap().id();
                p.graph.g[id].src_port = 9;
            },
            "reads output 9",
        ),
        (
            "one input port twice",
            |p, n| {
                for e in p
                    .graph
                    .g
                    .edges_directed(n, petgraph::Direction::Incoming)
                    .map(|e| e.id())
                    .collect::<Vec<_>>()
                {
                    p.graph.g[e].dst_port = 0;
                }
            },
            "reads input ports [0, 0]",
        ),
        (
            "step of no node",
            |p, _| p.graph.schedule.push(NodeIndex::new(9999)),
            "names node 9999, which does not exist",
        ),
        (
            "loss names no node",
            |p, _| p.graph.loss = Some(ValueRef { node: NodeIndex::new(9999), port: 0 }),
            "the loss names value 9999:0",
        ),
        ("placement of no value", |p, _| p.memory.values[0].value.port = 200, "a value that does not exist"),
        (
            "placement in no buffer",
            |p, _| p.memory.values[0].buffer = 10_000,
            "buffer 10000, which does not exist",
        ),
        ("buffer past the arena", |p, _| p.memory.arena_bytes = 0, "outside the 0-byte arena"),
    ];
    for (what, damage, fragment) in cases {
        let mut plan = good.clone();
        let n = two_inputs(&plan);
        damage(&mut plan, n);
        match Plan::from_bytes(&plan.to_bytes(), "plan.bin") {
            Err(e @ alexc::plan::PlanError::Inconsistent { .. }) => {
                let message = e.to_string();
                assert!(message.contains(fragment), "{what}: expected `{fragment}` in: {message}");
                assert!(message.starts_with("plan.bin: the plan is inconsistent ("), "{what}: {message}");
            }
            other => panic!("{what}: expected an inconsistent plan, got {other:?}"),
        }
    }
}

/// petgraph's decoder asserts (in debug builds) on a vacant node slot past the nodes it has; the
/// reader refuses such a payload first. Found by the mutation test (seed 12345, payload run 1400).
#[test]
fn vacant_node_slots_past_the_nodes_are_an_inconsistent_plan() {
    // compiler "", source "", mode Train, graph name "", no nodes, vacant slots 1 and 2.
    let payload = [0u8, 0, 0, 0, 0, 2, 1, 2];
    let e = Plan::from_bytes(&alexc::plan::seal(&payload), "plan.bin").unwrap_err();
    assert!(matches!(e, alexc::plan::PlanError::Inconsistent { .. }), "{e:?}");
    assert!(e.to_string().contains("vacant node slots [NodeIndex(1), NodeIndex(2)]"), "{e}");
}
