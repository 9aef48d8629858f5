//! The forward half of the placement pass: the towers made explicit (see [`super`]).

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::{TAIL_DEVICE, TOWERS};
use crate::catalog::{BiasAdd, Concat, Conv2d, ConvAttrs, Lrn, Op, Slice};
use crate::ir::{Edge, Graph, Node, Phase, ValueRef, HOST};

/// Splits the forward graph of `graph` into two towers on devices 0 and 1 and places every
/// forward node; returns how many nodes were split.
pub fn split_towers(graph: &mut Graph) -> usize {
    graph.devices = TOWERS;
    let order: Vec<NodeIndex> = graph
        .topo_order()
        .into_iter()
        .filter(|&n| !graph.g[n].op.def().is_source() && graph.g[n].phase == Phase::Forward)
        .collect();
    let mut towers =
        Towers { graph, halves: HashMap::new(), extended: HashMap::new(), joins: HashMap::new() };
    let mut split = Vec::new();
    for n in order {
        if towers.split(n) {
            split.push(n);
        } else {
            towers.keep_whole(n);
        }
    }
    let Towers { graph, halves, joins, .. } = towers;
    for &n in &split {
        let v = ValueRef { node: n, port: 0 };
        let stand_in = joins.get(&(v, TAIL_DEVICE)).copied().unwrap_or(halves[&v][0]);
        graph.redirect(v, stand_in, &[]);
        graph.g.remove_node(n);
    }
    place_sources(graph);
    split.len()
}

/// The rewrite's state: each split value's halves, and the joins made of them.
struct Towers<'g> {
    graph: &'g mut Graph,
    /// A value held as its channel halves, half `i` on device `i`.
    halves: HashMap<ValueRef, [ValueRef; 2]>,
    /// Halves that carry a halo for an LRN ahead: (channels before, channels after) its own.
    extended: HashMap<ValueRef, [Halo; 2]>,
    /// A split value joined whole on a device.
    joins: HashMap<(ValueRef, u8), ValueRef>,
}

/// Channels a half carries beyond its own, before and after them.
type Halo = (usize, usize);

/// The channel dimension of a batched feature map as the IR counts dimensions (after the batch).
const CHANNELS: usize = 1;

impl Towers<'_> {
    /// Rewrites `n` into one node per tower if it splits; `false` if it stays whole.
    fn split(&mut self, n: NodeIndex) -> bool {
        let op = self.graph.g[n].op.clone();
        let ins = self.graph.inputs(n);
        let name = self.graph.g[n].name.clone();
        let split_input = ins.first().is_some_and(|v| self.halves.contains_key(v));
        let parts: [ValueRef; 2] = match &op {
            Op::Conv2d(Conv2d(a)) if a.groups == 2 && a.out_channels % 2 == 0 => {
                let xs = self.ensure_halves(ins[0]);
                let ws = self.weight_halves(ins[1], a.out_channels);
                let one = Op::Conv2d(Conv2d(ConvAttrs {
                    groups: 1,
                    out_channels: a.out_channels / 2,
                    ..a.clone()
                }));
                [0, 1].map(|i| self.add(n, format!("{name}.t{i}"), one.clone(), &[xs[i], ws[i]], i as u8))
            }
            Op::Conv2d(Conv2d(a)) if a.groups == 1 && a.out_channels % 2 == 0 => {
                let ws = self.weight_halves(ins[1], a.out_channels);
                let half = Op::Conv2d(Conv2d(ConvAttrs { out_channels: a.out_channels / 2, ..a.clone() }));
                [0, 1].map(|i| {
                    let x = self.whole_on(ins[0], i as u8);
                    self.add(n, format!("{name}.t{i}"), half.clone(), &[x, ws[i]], i as u8)
                })
            }
            Op::BiasAdd(_) if split_input => {
                let xs = self.halves[&ins[0]];
                let bs = self.bias_halves(ins[0], ins[1]);
                [0, 1].map(|i| {
                    self.add(n, format!("{name}.t{i}"), Op::BiasAdd(BiasAdd), &[xs[i], bs[i]], i as u8)
                })
            }
            Op::Relu(_) if split_input => {
                let xs = self.halves[&ins[0]];
                [0, 1].map(|i| self.add(n, format!("{name}.t{i}"), op.clone(), &[xs[i]], i as u8))
            }
            Op::MaxPool(_) if split_input => {
                let xs = self.own_halves(ins[0]);
                [0, 1].map(|i| self.add(n, format!("{name}.t{i}"), op.clone(), &[xs[i]], i as u8))
            }
            Op::Lrn(l) if self.extended.contains_key(&ins[0]) => {
                let (xs, halo) = (self.halves[&ins[0]], self.extended[&ins[0]]);
                let own = self.own_channels(ins[0]);
                [0, 1].map(|i| {
                    let y = self.add(n, format!("{name}.t{i}/lrn"), Op::Lrn(l.clone()), &[xs[i]], i as u8);
                    self.add(n, format!("{name}.t{i}"), slice(halo[i].0, own[i]), &[y], i as u8)
                })
            }
            Op::Lrn(l) if split_input && self.halo_fits(ins[0], l) => self.split_lrn(n, &name, l, ins[0]),
            _ => return false,
        };
        let parts = match (&op, self.lrn_ahead(n)) {
            (Op::Conv2d(_), Some(h)) => self.with_halo(n, &name, parts, h),
            _ => parts,
        };
        // Bias and ReLU keep the halo of their input.
        if let Some(&halo) = self.extended.get(&ins[0]).filter(|_| matches!(op, Op::BiasAdd(_) | Op::Relu(_)))
        {
            self.extended.insert(ValueRef { node: n, port: 0 }, halo);
        }
        self.halves.insert(ValueRef { node: n, port: 0 }, parts);
        self.graph.layers.iter_mut().filter(|l| l.nodes.contains(&n)).for_each(|l| {
            l.nodes.retain(|&m| m != n);
            l.nodes.extend(parts.iter().map(|p| p.node));
        });
        true
    }

    /// The halo (`size / 2` channels) of the LRN that `n`'s output reaches through channel-wise
    /// elementwise layers (bias, ReLU), each the only reader of the one before, if one does.
    fn lrn_ahead(&self, n: NodeIndex) -> Option<usize> {
        let mut at = n;
        loop {
            let readers = self.graph.consumers(ValueRef { node: at, port: 0 });
            let [next] = readers[..] else { return None };
            match &self.graph.g[next].op {
                Op::BiasAdd(_) | Op::Relu(_) => at = next,
                Op::Lrn(l) => return Some(l.size / 2),
                _ => return None,
            }
        }
    }

    /// A convolution's halves, each with `h` channels of the other beside it (the halo its LRN
    /// reads), so that bias, ReLU and LRN run in place over the extended half: tower 0 takes the
    /// first `h` channels of tower 1, tower 1 the last `h` of tower 0.
    fn with_halo(&mut self, n: NodeIndex, name: &str, parts: [ValueRef; 2], h: usize) -> [ValueRef; 2] {
        let c0 = self.channels(parts[0]);
        if h == 0 || c0 < h || self.channels(parts[1]) < h {
            return parts;
        }
        let above = self.add(n, format!("{name}.t1/halo"), slice(0, h), &[parts[1]], 1);
        let below = self.add(n, format!("{name}.t0/halo"), slice(c0 - h, h), &[parts[0]], 0);
        let cat = Op::Concat(Concat { dim: CHANNELS });
        let e0 = self.add(n, format!("{name}.t0/ext"), cat.clone(), &[parts[0], above], 0);
        let e1 = self.add(n, format!("{name}.t1/ext"), cat, &[below, parts[1]], 1);
        self.extended.insert(ValueRef { node: n, port: 0 }, [(0, h), (h, 0)]);
        [e0, e1]
    }

    /// Each half's own channels (without a halo).
    fn own_channels(&self, v: ValueRef) -> [usize; 2] {
        let halo = self.extended.get(&v).copied().unwrap_or_default();
        [0, 1].map(|i| self.channels(self.halves[&v][i]) - halo[i].0 - halo[i].1)
    }

    /// `v`'s halves without their halo (slices of the extended halves where there is one).
    fn own_halves(&mut self, v: ValueRef) -> [ValueRef; 2] {
        let Some(&halo) = self.extended.get(&v) else { return self.halves[&v] };
        let own = self.own_channels(v);
        let base = self.graph.value_name(v);
        let hs = self.halves[&v];
        [0, 1].map(|i| {
            self.add(v.node, format!("{base}.t{i}/own"), slice(halo[i].0, own[i]), &[hs[i]], i as u8)
        })
    }

    /// The bias of each half of `x`, halo included: slices of the parameter on its device.
    fn bias_halves(&mut self, x: ValueRef, b: ValueRef) -> [ValueRef; 2] {
        let halo = self.extended.get(&x).copied().unwrap_or_default();
        let own = self.own_channels(x);
        let base = self.graph.value_name(b);
        let starts = [0, own[0]];
        [0, 1].map(|i| {
            let s = Slice { dim: 0, start: starts[i] - halo[i].0, len: own[i] + halo[i].0 + halo[i].1 };
            self.add(b.node, format!("{base}.t{i}"), Op::Slice(s), &[b], 0)
        })
    }

    /// Whether each half of `x` has the channels that LRN's halo takes from it.
    fn halo_fits(&self, x: ValueRef, l: &Lrn) -> bool {
        self.halves[&x].iter().all(|h| self.channels(*h) >= l.size / 2)
    }

    /// LRN over each half with `size / 2` channels of the other half beside it, cut back to the
    /// half: the same values as LRN over the whole.
    fn split_lrn(&mut self, n: NodeIndex, name: &str, l: &Lrn, x: ValueRef) -> [ValueRef; 2] {
        let [x0, x1] = self.halves[&x];
        let (c0, c1, h) = (self.channels(x0), self.channels(x1), l.size / 2);
        let below = self.add(n, format!("{name}.t1/halo"), slice(c0 - h, h), &[x0], 0);
        let above = self.add(n, format!("{name}.t0/halo"), slice(0, h), &[x1], 1);
        let ext0 =
            self.add(n, format!("{name}.t0/in"), Op::Concat(Concat { dim: CHANNELS }), &[x0, above], 0);
        let ext1 =
            self.add(n, format!("{name}.t1/in"), Op::Concat(Concat { dim: CHANNELS }), &[below, x1], 1);
        let l0 = self.add(n, format!("{name}.t0/lrn"), Op::Lrn(l.clone()), &[ext0], 0);
        let l1 = self.add(n, format!("{name}.t1/lrn"), Op::Lrn(l.clone()), &[ext1], 1);
        [
            self.add(n, format!("{name}.t0"), slice(0, c0), &[l0], 0),
            self.add(n, format!("{name}.t1"), slice(h, c1), &[l1], 1),
        ]
    }

    /// A node that stays whole: on [`TAIL_DEVICE`] if it reads a split value (joined there), else
    /// on its first computed input's device (device 0 for a node reading only sources).
    fn keep_whole(&mut self, n: NodeIndex) {
        let ins = self.graph.inputs(n);
        let reads_split = ins.iter().any(|v| self.halves.contains_key(v));
        let device = if reads_split {
            TAIL_DEVICE
        } else {
            ins.iter()
                .find(|v| !self.graph.g[v.node].op.def().is_source())
                .map_or(0, |v| self.graph.g[v.node].device)
        };
        self.graph.g[n].device = device;
        let edges: Vec<_> = self
            .graph
            .g
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.id(), ValueRef { node: e.source(), port: e.weight().src_port }, e.weight().dst_port))
            .filter(|(_, v, _)| self.halves.contains_key(v))
            .collect();
        for (edge, v, dst_port) in edges {
            let joined = self.whole_on(v, device);
            self.graph.g.remove_edge(edge);
            self.graph.g.add_edge(joined.node, n, Edge { src_port: joined.port, dst_port });
        }
    }

    /// `v` whole on `device`: a split value joined there (once per device), else `v` itself
    /// (read across devices through a transfer, inserted after autodiff).
    fn whole_on(&mut self, v: ValueRef, device: u8) -> ValueRef {
        if !self.halves.contains_key(&v) {
            return v;
        }
        if let Some(&j) = self.joins.get(&(v, device)) {
            return j;
        }
        let [h0, h1] = self.own_halves(v);
        let name = format!("{}/join.d{device}", self.graph.value_name(v));
        let j = self.add(v.node, name, Op::Concat(Concat { dim: CHANNELS }), &[h0, h1], device);
        self.joins.insert((v, device), j);
        j
    }

    /// `v`'s channel halves, sliced on `v`'s device if it is not split yet.
    fn ensure_halves(&mut self, v: ValueRef) -> [ValueRef; 2] {
        if self.halves.contains_key(&v) {
            return self.own_halves(v);
        }
        let c = self.channels(v);
        let device = self.graph.g[v.node].device;
        let base = self.graph.value_name(v);
        let halves =
            [0, 1].map(|i| self.add(v.node, format!("{base}.t{i}"), slice(i * c / 2, c / 2), &[v], device));
        self.halves.insert(v, halves);
        halves
    }

    /// A parameter's halves along its first dimension (`len` entries), as slices on its device
    /// (sources are placed last, [`place_sources`], and their slices with them).
    fn weight_halves(&mut self, w: ValueRef, len: usize) -> [ValueRef; 2] {
        let base = self.graph.value_name(w);
        [0, 1].map(|i| {
            let s = Op::Slice(Slice { dim: 0, start: i * len / 2, len: len / 2 });
            self.add(w.node, format!("{base}.t{i}"), s, &[w], 0)
        })
    }

    fn channels(&self, v: ValueRef) -> usize {
        self.graph.value_type(v).expect("typed").dims[0]
    }

    /// Adds `op` reading `inputs` on `device`, typed by the catalog, with `like`'s location.
    fn add(&mut self, like: NodeIndex, name: String, op: Op, inputs: &[ValueRef], device: u8) -> ValueRef {
        let types: Vec<_> =
            inputs.iter().map(|v| self.graph.value_type(*v).cloned().expect("typed")).collect();
        let refs: Vec<_> = types.iter().collect();
        let outputs = op.def().infer(&refs).expect("a tower of a well-typed layer is well typed").outputs;
        let loc = self.graph.g[like].loc;
        let node = self.graph.add_node(Node { name, op, outputs, phase: Phase::Forward, loc, device });
        for (port, v) in inputs.iter().enumerate() {
            self.graph.connect(*v, node, port as u8);
        }
        ValueRef { node, port: 0 }
    }
}

/// A channel slice of a batched feature map.
fn slice(start: usize, len: usize) -> Op {
    Op::Slice(Slice { dim: CHANNELS, start, len })
}

/// Each source (labels, parameter) on the device of its first reader that is not a view, else
/// device 0; the views of a source (a weight's halves) with it. The input batch stays on the host
/// ([`HOST`]): each device that reads it gets it by a transfer when it needs it, and again for the
/// backward pass ([`super::refetch`]), rather than holding it through the step (unless a view reads
/// it: a view reads its source on its own device).
fn place_sources(graph: &mut Graph) {
    for s in graph.node_indices() {
        if !graph.g[s].op.def().is_source() {
            continue;
        }
        let readers = graph.consumers(ValueRef { node: s, port: 0 });
        // A view reads its source where it lies: an input read through one stays on a device.
        if matches!(graph.g[s].op, Op::Input(_)) && !readers.iter().any(|&r| graph.g[r].op.def().is_view()) {
            graph.g[s].device = HOST;
            continue;
        }
        let device =
            readers.iter().find(|&&r| !graph.g[r].op.def().is_view()).map_or(0, |&r| graph.g[r].device);
        graph.g[s].device = device;
        for r in readers {
            if graph.g[r].op.def().is_view() {
                graph.g[r].device = device;
            }
        }
    }
}
