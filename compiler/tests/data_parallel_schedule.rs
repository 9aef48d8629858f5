//! The schedule of a data-parallel step (`alexc compile --replicas 2`) on AlexNet lets the
//! gradient all-reduce overlap the backward pass: each bucket's all-reduce runs right after its
//! last gradient, the updates that read the averages run after everything else, so that every
//! bucket but the last has backward work after it to hide behind; the arena grows by at most 5%.

use alexc::catalog::Op;
use alexc::ir::{Mode, Phase};
use alexc::passes::DataParallel;
use alexc::{front_end_str, lower_with, Lowering};

fn alexnet(replicas: usize) -> alexc::Lowered {
    let text = include_str!("../../graphs/alexnet.ron");
    let checked = front_end_str(text, "alexnet.ron", &mut |_, _, _| {}).expect("alexnet checks");
    let lowering =
        Lowering { data_parallel: (replicas > 1).then(|| DataParallel::new(replicas)), ..Default::default() };
    lower_with(&checked, Mode::Train, 128, &lowering, &mut |_, _, _| {}).expect("alexnet lowers")
}

#[test]
fn a_data_parallel_schedule_runs_the_updates_after_the_backward_pass_and_each_bucket_early() {
    let two = alexnet(2);
    let g = &two.graph;
    let at = |n| g.schedule.iter().position(|&m| m == n).unwrap();
    let buckets: Vec<_> =
        g.schedule.iter().copied().filter(|&n| matches!(g.g[n].op, Op::AllReduceMean(_))).collect();
    assert!(buckets.len() >= 4, "alexnet's gradients fill {} buckets", buckets.len());
    let first_update = g.schedule.iter().position(|&n| matches!(g.g[n].op, Op::SgdUpdate(_))).unwrap();
    let last_backward = g.schedule.iter().rposition(|&n| g.g[n].phase == Phase::Backward).unwrap();
    assert!(first_update > last_backward, "an update runs before the backward pass ends");
    for &b in &buckets {
        let ready = g.inputs(b).iter().map(|v| at(v.node)).max().unwrap();
        assert_eq!(at(b), ready + 1, "{} waits after its last gradient", g.g[b].name);
    }
    let backward_after = |b| g.schedule[at(b) + 1..first_update].len();
    let hidden = buckets.iter().filter(|&&b| backward_after(b) > 0).count();
    assert!(hidden >= buckets.len() - 1, "only {hidden} of {} buckets have work after them", buckets.len());
    let one = alexnet(1);
    let growth = two.memory.arena_bytes as f64 / one.memory.arena_bytes as f64;
    assert!(growth <= 1.05, "the data-parallel arena is {growth:.3}x the single process's");
}
