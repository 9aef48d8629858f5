//! Ops read back from the IR's text form: the name and the attribute words that each op's
//! [`OpDef::attrs`] writes, and the output types the line declares (a parameter's shape, the
//! input's size). The inverse of the dump, so that a test can state a pass's input as IR text
//! ([`crate::ir::read_graph`]).

use super::*;
use crate::spec::{Init, LrnConvention};
use crate::value::TensorType;

/// An op's attribute words (`k=3`, `argmax`, `init=normal(0, 0.01)`), taken one by one; what is
/// left over at the end is an error, so a misspelt attribute is never silently dropped.
pub struct Words {
    words: Vec<(String, Option<String>)>,
}

impl Words {
    /// Splits at spaces outside brackets.
    pub fn parse(text: &str) -> Result<Words, String> {
        let mut words = Vec::new();
        let (mut depth, mut start) = (0i32, 0);
        let text = text.trim();
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ' ' if depth == 0 => {
                    let w = &text[start..i];
                    if !w.is_empty() {
                        words.push(match w.split_once('=') {
                            Some((k, v)) => (k.to_string(), Some(v.to_string())),
                            None => (w.to_string(), None),
                        });
                    }
                    start = i + 1;
                }
                _ => {}
            }
            if depth < 0 {
                return Err(format!("`{text}` closes a bracket it never opened"));
            }
        }
        if depth != 0 {
            return Err(format!("`{text}` leaves a bracket open"));
        }
        Ok(Words { words })
    }

    fn take(&mut self, key: &str) -> Option<Option<String>> {
        let at = self.words.iter().position(|(k, _)| k == key)?;
        Some(self.words.remove(at).1)
    }

    /// The value of `key=value`.
    pub fn text(&mut self, key: &str) -> Result<String, String> {
        match self.take(key) {
            Some(Some(v)) => Ok(v),
            Some(None) => Err(format!("`{key}` needs a value (`{key}=...`)")),
            None => Err(format!("the attribute `{key}=` is missing")),
        }
    }

    pub fn number<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, String> {
        let v = self.text(key)?;
        v.parse().map_err(|_| format!("`{key}={v}` is not a number"))
    }

    pub fn optional<T: std::str::FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        if self.words.iter().any(|(k, _)| k == key) {
            self.number(key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether the bare word `flag` is there.
    pub fn flag(&mut self, flag: &str) -> bool {
        self.take(flag).is_some()
    }

    /// `HxW`, as `in=13x13`.
    pub fn size(&mut self, key: &str) -> Result<[usize; 2], String> {
        let v = self.text(key)?;
        let bad = || format!("`{key}={v}` is not a size such as 13x13");
        let (h, w) = v.split_once('x').ok_or_else(bad)?;
        Ok([h.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?])
    }

    /// Nothing left over.
    pub fn done(self) -> Result<(), String> {
        match self.words.first() {
            None => Ok(()),
            Some((k, _)) => Err(format!("unknown attribute `{k}`")),
        }
    }
}

impl ConvAttrs {
    fn read(w: &mut Words) -> Result<ConvAttrs, String> {
        let algo = match w.take("algo") {
            Some(Some(name)) => {
                Some(ConvAlgo::from_name(&name).ok_or(format!("unknown algorithm `{name}`"))?)
            }
            Some(None) => return Err("`algo` needs a value".into()),
            None => None,
        };
        Ok(ConvAttrs {
            out_channels: w.number("out")?,
            kernel: w.number("k")?,
            stride: w.number("s")?,
            padding: w.number("p")?,
            groups: w.number("g")?,
            algo,
        })
    }
}

impl PoolAttrs {
    fn read(w: &mut Words) -> Result<PoolAttrs, String> {
        Ok(PoolAttrs { kernel: w.number("k")?, stride: w.number("s")?, padding: w.number("p")? })
    }
}

impl Lrn {
    fn read(w: &mut Words) -> Result<Lrn, String> {
        let convention = match w.text("convention")?.as_str() {
            "paper" => LrnConvention::Paper,
            "caffe" => LrnConvention::Caffe,
            other => return Err(format!("unknown LRN convention `{other}`: paper or caffe")),
        };
        Ok(Lrn {
            size: w.number("size")?,
            alpha: w.number("alpha")?,
            beta: w.number("beta")?,
            k: w.number("k")?,
            convention,
        })
    }
}

/// `normal(0, 0.01)`, `const(1)`, `uniform(-1, 1)`, `kaiming_uniform`.
fn read_init(text: &str) -> Result<Init, String> {
    if text == "kaiming_uniform" {
        return Ok(Init::KaimingUniform);
    }
    let bad =
        || format!("`init={text}` is not an initialiser: const(c), normal(mean, std), uniform(low, high)");
    let (kind, args) = text.strip_suffix(')').and_then(|t| t.split_once('(')).ok_or_else(bad)?;
    let args: Vec<f64> =
        args.split(',').map(|a| a.trim().parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    match (kind, args.as_slice()) {
        ("const", [c]) => Ok(Init::Constant(*c)),
        ("normal", [mean, std]) => Ok(Init::Normal { mean: *mean, std: *std }),
        ("uniform", [low, high]) => Ok(Init::Uniform { low: *low, high: *high }),
        _ => Err(bad()),
    }
}

/// `d1` or `host`.
fn read_device(text: &str) -> Result<u8, String> {
    if text == "host" {
        return Ok(HOST);
    }
    text.strip_prefix('d')
        .and_then(|d| d.parse().ok())
        .ok_or(format!("`{text}` is not a device: d0, d1 or host"))
}

/// The shape of output 0, for the sources whose shape it is (parameters, optimizer state): empty
/// before shape inference, which gives parameters theirs.
fn shape(outputs: &[TensorType]) -> Vec<usize> {
    outputs.first().map(|t| t.dims.clone()).unwrap_or_default()
}

impl Op {
    /// The op named `name` with attribute text `attrs`, as a dump line writes them; `outputs`, the
    /// output types the line declares (empty before shape inference).
    pub fn from_text(name: &str, attrs: &str, outputs: &[TensorType]) -> Result<Op, String> {
        if name == "fused" {
            return FusedOp::from_text(attrs).map(Op::Fused);
        }
        let mut w = Words::parse(attrs)?;
        let op = match name {
            "input" => {
                let v = w.text("size")?;
                let bad = || format!("`size={v}` is not C x H x W, such as 3x227x227");
                let dims: Vec<usize> =
                    v.split('x').map(|d| d.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
                let [channels, height, width] = dims[..] else { return Err(bad()) };
                Op::Input(Input { channels, height, width })
            }
            "labels" => Op::Labels(Labels { classes: w.number("classes")? }),
            "param" => {
                let role = match w.text("role")?.as_str() {
                    "weight" => ParamRole::Weight,
                    "bias" => ParamRole::Bias,
                    other => return Err(format!("unknown parameter role `{other}`: weight or bias")),
                };
                Op::Param(Param {
                    shape: shape(outputs),
                    fan_in: w.number("fan_in")?,
                    role,
                    init: read_init(&w.text("init")?)?,
                    lr_mult: w.number("lr_mult")?,
                    decay_mult: w.number("decay_mult")?,
                })
            }
            "state" => {
                let (kind, init) = match w.text("kind")?.as_str() {
                    "momentum" => (StateKind::Momentum, "zeros".to_string()),
                    "loss_scale" => (StateKind::LossScale, INITIAL_LOSS_SCALE.to_string()),
                    other => return Err(format!("unknown state kind `{other}`: momentum or loss_scale")),
                };
                if w.text("init")? != init {
                    return Err(format!("this state starts at `init={init}`"));
                }
                Op::State(State { param: w.text("of")?, kind, shape: shape(outputs) })
            }
            "conv2d" => Op::Conv2d(Conv2d(ConvAttrs::read(&mut w)?)),
            "conv2d_backward_data" => {
                let input_hw = w.size("in")?;
                Op::Conv2dBackwardData(Conv2dBackwardData { attrs: ConvAttrs::read(&mut w)?, input_hw })
            }
            "conv2d_backward_weight" => {
                Op::Conv2dBackwardWeight(Conv2dBackwardWeight(ConvAttrs::read(&mut w)?))
            }
            "linear" => Op::Linear(Linear { out_features: w.number("out")?, in_features: w.optional("in")? }),
            "linear_backward_data" => Op::LinearBackwardData(LinearBackwardData),
            "linear_backward_weight" => Op::LinearBackwardWeight(LinearBackwardWeight),
            "bias_add" => Op::BiasAdd(BiasAdd),
            "bias_grad" => Op::BiasGrad(BiasGrad),
            "relu" => Op::Relu(Relu),
            "relu_grad" => Op::ReluGrad(ReluGrad),
            "lrn" => Op::Lrn(Lrn::read(&mut w)?),
            "lrn_grad" => Op::LrnGrad(LrnGrad(Lrn::read(&mut w)?)),
            "max_pool" => {
                let argmax = w.flag("argmax");
                Op::MaxPool(MaxPool { attrs: PoolAttrs::read(&mut w)?, argmax })
            }
            "max_pool_grad" => {
                let input_hw = w.size("in")?;
                Op::MaxPoolGrad(MaxPoolGrad { attrs: PoolAttrs::read(&mut w)?, input_hw })
            }
            "dropout" => {
                let training = w.flag("training");
                Op::Dropout(Dropout { rate: w.number("rate")?, training })
            }
            "dropout_grad" => Op::DropoutGrad(DropoutGrad { rate: w.number("rate")? }),
            "flatten" => Op::Flatten(Flatten),
            "reshape" => {
                let v = w.text("dims")?;
                let bad = || format!("`dims={v}` is not a list such as [256, 6, 6]");
                let inner = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).ok_or_else(bad)?;
                let dims = inner
                    .split(',')
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| d.trim().parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                Op::Reshape(Reshape { dims })
            }
            "add" => Op::Add(Add),
            "add_n" => Op::AddN(AddN),
            "softmax_cross_entropy" => {
                Op::SoftmaxCrossEntropy(SoftmaxCrossEntropy { classes: w.number("classes")? })
            }
            "softmax_cross_entropy_grad" => Op::SoftmaxCrossEntropyGrad(SoftmaxCrossEntropyGrad),
            "sgd_update" => {
                let guarded = w.flag("guarded");
                Op::SgdUpdate(SgdUpdate {
                    lr_mult: w.number("lr_mult")?,
                    decay_mult: w.number("decay_mult")?,
                    guarded,
                })
            }
            "scale_loss_grad" => Op::ScaleLossGrad(ScaleLossGrad),
            "unscale_grads" => {
                Op::UnscaleGrads(UnscaleGrads { growth_interval: w.number("growth_interval")? })
            }
            "slice" => {
                Op::Slice(Slice { dim: w.number("dim")?, start: w.number("start")?, len: w.number("len")? })
            }
            "concat" => Op::Concat(Concat { dim: w.number("dim")? }),
            "pad" => {
                Op::Pad(Pad { dim: w.number("dim")?, before: w.number("before")?, after: w.number("after")? })
            }
            "transfer" => Op::Transfer(Transfer {
                from: read_device(&w.text("from")?)?,
                to: read_device(&w.text("to")?)?,
            }),
            "cast" => {
                let to = w.text("to")?;
                Op::Cast(Cast {
                    to: DType::from_name(&to).ok_or(format!("`to={to}` is not an element type"))?,
                })
            }
            "all_reduce_mean" => Op::AllReduceMean(AllReduceMean {
                bucket: w.number("bucket")?,
                replicas: w.number("replicas")?,
            }),
            other => return Err(format!("unknown op `{other}`")),
        };
        w.done().map_err(|e| format!("{e} of `{name}`"))?;
        Ok(op)
    }
}
