//! The IR's text form read back: [`read_graph`] parses what [`super::print_graph`] writes into a
//! graph that prints the same, so a one-pass test can state its input as IR and run exactly its
//! pass, as Cranelift's filetests do. What the text does not hold is set as the compiler sets it:
//! no source locations; the paper's SGD settings at batch size 1, with the classes its labels
//! declare; sources in the forward phase but for optimizer state, which belongs to the update.
//!
//! ```text
//! graph tiny // after fuse
//!   ; loss=loss logits=fc scheduled
//!   ; layer conv: Conv2d [conv, conv.bias_add] params [conv.weight, conv.bias] -> conv.bias_add
//!   ; sources
//!   x = input() : f32[N,1,5,5]
//!   ; forward
//!   relu = fused(x, conv.weight, conv.bias) [conv2d(out=2 k=3 s=1 p=0 g=1) + bias_add + relu] : f32[N,2,3,3]
//! ```

use std::collections::HashMap;

use petgraph::stable_graph::NodeIndex;

use super::{Graph, Layer, Node, Phase, HOST};
use crate::catalog::Op;
use crate::spec::{Optimizer, Schedule, Training, TrainingSpec};
use crate::value::{DType, TensorType, ValueRef};

/// Why IR text does not read: the line (1-based) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ReadError {
    pub line: usize,
    pub message: String,
}

/// The graph that `text` (a dump, from its `graph` line on) writes; the lines after the graph
/// (a memory table) are left. Every problem is reported with its line.
pub fn read_graph(text: &str) -> Result<Graph, ReadError> {
    let mut lines =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).skip_while(|(_, l)| !l.starts_with("graph "));
    let (_, header) = lines.next().ok_or(ReadError { line: 1, message: "no `graph NAME` line".into() })?;
    let name = header["graph ".len()..].split(" //").next().unwrap_or("").trim().to_string();
    let mut reader = Reader {
        graph: Graph {
            name,
            g: Default::default(),
            loss: None,
            logits: None,
            spec: TrainingSpec {
                classes: 0,
                optimizer: Optimizer::Sgd { lr: 0.01, momentum: 0.9, weight_decay: 0.0005 },
                schedule: Schedule::Constant,
                training: Training { batch_size: 1, epochs: 1, seed: 0 },
                data: None,
                precision: Default::default(),
            },
            layers: Vec::new(),
            schedule: Vec::new(),
            devices: 1,
        },
        values: HashMap::new(),
        phase: Phase::Forward,
        scheduled: false,
        facts: Vec::new(),
        layers: Vec::new(),
    };
    for (number, line) in lines {
        let Some(body) = line.strip_prefix("  ") else { break };
        reader.line(body).map_err(|message| ReadError { line: number, message })?;
    }
    reader.finish()
}

struct Reader {
    graph: Graph,
    /// Node names to their indices.
    values: HashMap<String, NodeIndex>,
    phase: Phase,
    scheduled: bool,
    /// `loss=` and `logits=`, resolved at the end: (key, value name, line).
    facts: Vec<(String, String)>,
    /// Layer lines, resolved at the end (they name nodes declared after them).
    layers: Vec<String>,
}

impl Reader {
    fn line(&mut self, body: &str) -> Result<(), String> {
        if let Some(comment) = body.strip_prefix("; ") {
            return self.header(comment.trim());
        }
        let (lhs, rhs) = body.split_once(" = ").ok_or("a node line is `name = op(inputs) attrs : types`")?;
        let (rest, device) = match rhs.rsplit_once(" @") {
            Some((rest, d)) if !d.contains(' ') => (rest, Some(d)),
            _ => (rhs, None),
        };
        let (call, types) = match rest.rsplit_once(" : ") {
            Some((call, types)) => (call, Some(types)),
            None => (rest, None),
        };
        let open = call.find('(').ok_or("the op has no `(inputs)`")?;
        let op_name = &call[..open];
        let close = matching(call, open).ok_or("the inputs' `(` is never closed")?;
        let inputs = &call[open + 1..close];
        let attrs = call[close + 1..].trim();
        let outputs = match types {
            Some(t) => split_top(t).iter().map(|t| read_type(t)).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let names: Vec<&str> = lhs.split(", ").collect();
        let node_name = names[0].to_string();
        for (p, n) in names.iter().enumerate().skip(1) {
            if *n != format!("{node_name}:{p}") {
                return Err(format!("output {p} is written `{n}`, not `{node_name}:{p}`"));
            }
        }
        if !outputs.is_empty()
            && outputs.len() != names.len().max(1)
            && !(names.len() == 1 && outputs.len() > 1)
        {
            return Err(format!("{} output name(s) but {} type(s)", names.len(), outputs.len()));
        }
        if self.values.contains_key(&node_name) {
            return Err(format!("`{node_name}` is declared twice"));
        }
        let op = Op::from_text(op_name, attrs, &outputs).map_err(|e| format!("`{node_name}`: {e}"))?;
        let source = op.def().is_source();
        let phase = if matches!(op, Op::State(_)) { Phase::Update } else { self.phase };
        let device = match device {
            None => 0,
            Some("host") => HOST,
            Some(d) => {
                d.strip_prefix('d').and_then(|d| d.parse().ok()).ok_or(format!("`@{d}` is not a device"))?
            }
        };
        let node =
            self.graph.add_node(Node { name: node_name.clone(), op, outputs, phase, loc: None, device });
        for (port, input) in split_top(inputs).iter().enumerate() {
            let v = self.value(input)?;
            self.graph.connect(v, node, port as u8);
        }
        self.values.insert(node_name, node);
        if self.scheduled && !source {
            self.graph.schedule.push(node);
        }
        Ok(())
    }

    fn header(&mut self, comment: &str) -> Result<(), String> {
        match comment {
            "sources" | "forward" => self.phase = Phase::Forward,
            "backward" => self.phase = Phase::Backward,
            "update" => self.phase = Phase::Update,
            _ if comment.starts_with("layer ") => self.layers.push(comment["layer ".len()..].to_string()),
            _ => {
                for fact in comment.split_whitespace() {
                    match fact.split_once('=') {
                        Some(("devices", n)) => {
                            self.graph.devices =
                                n.parse().map_err(|_| format!("`devices={n}` is not a count"))?
                        }
                        Some((key @ ("loss" | "logits"), v)) => {
                            self.facts.push((key.to_string(), v.to_string()))
                        }
                        Some(("precision", p)) => {
                            self.graph.spec.precision = crate::spec::Precision::from_name(p)
                                .ok_or(format!("`precision={p}`: f32, bf16 or f16"))?
                        }
                        None if fact == "scheduled" => self.scheduled = true,
                        _ => return Err(format!("`{fact}` is not something a graph header says")),
                    }
                }
            }
        }
        Ok(())
    }

    /// `node` or `node:port`, declared on an earlier line.
    fn value(&self, name: &str) -> Result<ValueRef, String> {
        let (node, port) = match name.rsplit_once(':') {
            Some((n, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                (n, p.parse().map_err(|_| format!("`{name}`: port past 255"))?)
            }
            _ => (name, 0),
        };
        let &n = self.values.get(node).ok_or(format!("`{node}` is not declared on an earlier line"))?;
        Ok(ValueRef { node: n, port })
    }

    fn finish(mut self) -> Result<Graph, ReadError> {
        let at_end = |message: String| ReadError { line: 0, message };
        for (key, v) in std::mem::take(&mut self.facts) {
            let v = self.value(&v).map_err(at_end)?;
            if key == "loss" {
                self.graph.loss = Some(v);
            } else {
                self.graph.logits = Some(v);
            }
        }
        let labels = self.graph.g.node_weights().find_map(|n| match &n.op {
            Op::Labels(l) => Some(l.classes),
            _ => None,
        });
        self.graph.spec.classes = labels.unwrap_or(0);
        for text in std::mem::take(&mut self.layers) {
            let layer = self.layer(&text).map_err(|e| at_end(format!("layer `{text}`: {e}")))?;
            self.graph.layers.push(layer);
        }
        Ok(self.graph)
    }

    /// `conv1: Conv2d [conv1, conv1.bias_add] params [conv1.weight, conv1.bias] -> conv1.bias_add`.
    fn layer(&self, text: &str) -> Result<Layer, String> {
        let (name, rest) = text.split_once(": ").ok_or("no `name:`")?;
        let (op, rest) = rest.split_once(" [").ok_or("no `[nodes]`")?;
        let (nodes, rest) = rest.split_once("] params [").ok_or("no `params [...]`")?;
        let (params, output) = rest.split_once("] -> ").ok_or("no `-> output`")?;
        let list = |l: &str| -> Result<Vec<NodeIndex>, String> {
            l.split(", ").filter(|s| !s.is_empty()).map(|n| self.value(n).map(|v| v.node)).collect()
        };
        let output = if output == "(fused)" {
            ValueRef { node: NodeIndex::end(), port: 0 }
        } else {
            self.value(output)?
        };
        Ok(Layer {
            name: name.to_string(),
            op: op.to_string(),
            output,
            nodes: list(nodes)?,
            params: list(params)?,
        })
    }
}

/// The index of the bracket that closes the one at `open`.
fn matching(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `a, b[1, 2], c` split at the commas outside brackets.
fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

/// `f32[N,96,55,55]`, `i32[N]`, `f32[]`.
fn read_type(text: &str) -> Result<TensorType, String> {
    let bad = || format!("`{text}` is not a type such as f32[N,96,55,55]");
    let (dtype, dims) = text.strip_suffix(']').and_then(|t| t.split_once('[')).ok_or_else(bad)?;
    let dtype = DType::from_name(dtype).ok_or_else(bad)?;
    let mut dims: Vec<&str> = dims.split(',').filter(|d| !d.is_empty()).collect();
    let batched = dims.first() == Some(&"N");
    if batched {
        dims.remove(0);
    }
    let dims = dims.iter().map(|d| d.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    Ok(TensorType { dtype, batched, dims })
}
