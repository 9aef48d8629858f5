//! The schedule of a data-parallel step (`alexc compile --replicas 2`) on AlexNet lets the
//! gradient all-reduce overlap the backward pass: each gradient a bucket averages is computed as
//! soon as its inputs exist, each bucket's all-reduce runs right after its last gradient, and the
//! updates that read the averages run after everything else, so that every bucket but the last
//! has backward work after it to hide behind (fc6's, the largest, most of the pass). The arena
//! grows by at most the gradients' bytes, which the step holds to its end (as DDP holds them):
//! the averages are written over the gradients.

use alexc::catalog::Op;
use alexc::ir::{Mode, Phase};
use alexc::passes::DataParallel;
use alexc::{front_end_str, lower_with, Lowering};
use petgraph::stable_graph::NodeIndex;
use petgraph::Direction;

fn alexnet(replicas: usize) -> alexc::Lowered {
    alexnet_with(replicas, false)
}

fn alexnet_with(replicas: usize, split_grouped_conv: bool) -> alexc::Lowered {
    let text = include_str!("../../graphs/alexnet.ron");
    let checked = front_end_str(text, "alexnet.ron", &mut |_, _, _| {}).expect("alexnet checks");
    let lowering = Lowering {
        data_parallel: (replicas > 1).then(|| DataParallel::new(replicas)),
        split_grouped_conv,
        ..Default::default()
    };
    lower_with(&checked, Mode::Train, 128, &lowering, &mut |_, _, _| {}).expect("alexnet lowers")
}

#[test]
fn a_data_parallel_schedule_computes_each_bucket_as_soon_as_it_can_and_the_updates_after_the_backward_pass() {
    let two = alexnet(2);
    let g = &two.graph;
    let at = |n| g.schedule.iter().position(|&m| m == n).unwrap();
    let buckets: Vec<_> =
        g.schedule.iter().copied().filter(|&n| matches!(g.g[n].op, Op::AllReduceMean(_))).collect();
    assert!(buckets.len() >= 4, "alexnet's gradients fill {} buckets", buckets.len());
    let first_update = g.schedule.iter().position(|&n| matches!(g.g[n].op, Op::SgdUpdate(_))).unwrap();
    let last_backward = g.schedule.iter().rposition(|&n| g.g[n].phase == Phase::Backward).unwrap();
    assert!(first_update > last_backward, "an update runs before the backward pass ends");
    let is_bucket = |n: NodeIndex| matches!(g.g[n].op, Op::AllReduceMean(_));
    let feeds_bucket = |n: NodeIndex| g.g.neighbors_directed(n, Direction::Outgoing).any(is_bucket);
    for &b in &buckets {
        let ready = g.inputs(b).iter().map(|v| at(v.node)).max().unwrap();
        assert_eq!(at(b), ready + 1, "{} waits after its last gradient", g.g[b].name);
        for v in g.inputs(b) {
            // Between the moment the gradient could run and its running, only other buckets'
            // gradients and all-reduces run.
            let could = g
                .inputs(v.node)
                .iter()
                .filter(|i| !g.g[i.node].op.def().is_source())
                .map(|i| at(i.node))
                .max();
            let from = could.map_or(0, |c| c + 1);
            for &n in &g.schedule[from..at(v.node)] {
                assert!(
                    is_bucket(n) || feeds_bucket(n),
                    "{} runs before the gradient {}, which was ready",
                    g.g[n].name,
                    g.g[v.node].name
                );
            }
        }
    }
    let backward_after = |b| g.schedule[at(b) + 1..first_update].len();
    let hidden = buckets.iter().filter(|&&b| backward_after(b) > 0).count();
    assert!(hidden >= buckets.len() - 1, "only {hidden} of {} buckets have work after them", buckets.len());
    // fc6's weight gradient, by far the largest bucket, has most of the backward pass after it.
    let largest =
        *buckets.iter().max_by_key(|&&b| g.g[b].outputs.iter().map(|t| t.bytes(128)).sum::<usize>()).unwrap();
    let backward = g.schedule[..first_update].iter().filter(|&&n| g.g[n].phase == Phase::Backward).count();
    let after_largest =
        g.schedule[at(largest)..first_update].iter().filter(|&&n| g.g[n].phase == Phase::Backward).count();
    assert!(
        2 * after_largest >= backward,
        "{} has {after_largest} of the {backward} backward nodes after it",
        g.g[largest].name
    );
    let one = alexnet(1);
    let gradients: usize = buckets.iter().flat_map(|&b| &g.g[b].outputs).map(|t| t.bytes(128)).sum();
    assert!(
        two.memory.arena_bytes <= one.memory.arena_bytes + gradients,
        "the data-parallel arena is {} bytes, more than the single process's {} and the gradients' {gradients}",
        two.memory.arena_bytes,
        one.memory.arena_bytes
    );
}

#[test]
fn with_grouped_convolutions_split_each_group_s_weight_gradient_runs_as_soon_as_it_can() {
    let two = alexnet_with(2, true);
    let g = &two.graph;
    let at = |n: NodeIndex| g.schedule.iter().position(|&m| m == n).unwrap();
    let is_bucket = |n: NodeIndex| matches!(g.g[n].op, Op::AllReduceMean(_));
    let mut parts = 0;
    for b in g.schedule.iter().copied().filter(|&n| is_bucket(n)) {
        for v in g.inputs(b).into_iter().filter(|v| matches!(g.g[v.node].op, Op::Concat(_))) {
            for part in g.inputs(v.node) {
                parts += 1;
                let ready = g
                    .inputs(part.node)
                    .iter()
                    .filter(|i| !g.g[i.node].op.def().is_source())
                    .map(|i| at(i.node))
                    .max();
                // Only other gradients of buckets, their concats and the all-reduces run between.
                for &n in &g.schedule[ready.map_or(0, |r| r + 1)..at(part.node)] {
                    let feeds =
                        g.g.neighbors_directed(n, Direction::Outgoing)
                            .all(|r| is_bucket(r) || matches!(g.g[r].op, Op::Concat(_)));
                    assert!(
                        is_bucket(n) || feeds,
                        "{} runs before the ready gradient part {}",
                        g.g[n].name,
                        g.g[part.node].name
                    );
                }
            }
        }
    }
    assert!(parts >= 4, "alexnet's split grouped convolutions give {parts} weight-gradient parts");
}
