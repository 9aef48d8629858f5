//! The training settings of a graph file, checked as it is read: multipliers, input size, classes,
//! batch size and epochs, the optimizer, the schedule and the data pipeline. Every problem is
//! reported, located at the setting, with its fix.

use crate::ast::{DataDecl, Lighting, OptimizerDecl, ParsedGraph, ScheduleDecl};
use crate::diag::{Diagnostic, Diagnostics};

pub(super) fn check_settings(parsed: &ParsedGraph, diags: &mut Diagnostics) {
    let f = &parsed.graph;
    let map = &parsed.source_map;
    let mut err = |path: &str, msg: String, help: &str| {
        diags.push(Diagnostic::error(msg).at(map.find_nearest(path)).help(help))
    };
    let mut check_mults = |path: &str, p: &crate::ast::ParamDecl| {
        for (what, v) in [("lr_mult", p.lr_mult), ("decay_mult", p.decay_mult)] {
            if let Some(v) = v.filter(|v| !(*v >= 0.0 && v.is_finite())) {
                err(
                    &format!("{path}.{what}"),
                    format!("{what} {v} is negative"),
                    "multipliers are >= 0 (0 freezes the parameter)",
                );
            }
        }
    };
    check_mults("defaults.weight", &f.defaults.weight);
    check_mults("defaults.bias", &f.defaults.bias);
    for (i, n) in f.nodes.iter().enumerate() {
        let params = match &n.op {
            crate::ast::OpDecl::Conv2d(c) => [&c.weight, &c.bias],
            crate::ast::OpDecl::Linear(l) => [&l.weight, &l.bias],
            _ => continue,
        };
        check_mults(&format!("nodes[{i}].op.weight"), params[0]);
        check_mults(&format!("nodes[{i}].op.bias"), params[1]);
    }
    if f.input.channels == 0 || f.input.height == 0 || f.input.width == 0 {
        err("input", "the input has a zero dimension".into(), "give channels, height and width >= 1");
    }
    if f.classes < 2 {
        err(
            "classes",
            format!("`classes: {}` needs at least 2 classes", f.classes),
            "set classes to the number of labels",
        );
    }
    if f.nodes.is_empty() {
        err("nodes", "the graph has no nodes".into(), "declare at least one layer in `nodes`");
    }
    if f.training.batch_size == 0 {
        err("training.batch_size", "batch_size is 0".into(), "use a batch of at least 1, such as 128");
    }
    if f.training.epochs == 0 {
        err("training.epochs", "epochs is 0".into(), "train for at least one epoch");
    }
    let OptimizerDecl::Sgd { lr, momentum, weight_decay } = f.optimizer;
    if !(lr > 0.0 && lr.is_finite()) {
        err("optimizer.lr", format!("learning rate {lr} is not positive"), "the paper uses lr: 0.01");
    }
    if !(0.0..1.0).contains(&momentum) {
        err(
            "optimizer.momentum",
            format!("momentum {momentum} is outside [0, 1)"),
            "the paper uses momentum: 0.9",
        );
    }
    if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
        err(
            "optimizer.weight_decay",
            format!("weight decay {weight_decay} is negative"),
            "the paper uses weight_decay: 0.0005",
        );
    }
    match f.schedule {
        ScheduleDecl::Step { factor, every_epochs } => {
            if !(factor > 0.0 && factor < 1.0) || every_epochs == 0 {
                err(
                    "schedule",
                    "a step schedule needs 0 < factor < 1 and every_epochs >= 1".into(),
                    "for example Step(factor: 0.1, every_epochs: 30)",
                );
            }
        }
        ScheduleDecl::Plateau { factor, .. } => {
            if !(factor > 0.0 && factor < 1.0) {
                err(
                    "schedule.factor",
                    format!("plateau factor {factor} is outside (0, 1)"),
                    "the paper divides by 10: factor: 0.1",
                );
            }
        }
        ScheduleDecl::Constant => {}
    }
    if let Some(d) = &f.data {
        if f.input.channels != 3 {
            err(
                "input",
                format!(
                    "the data pipeline makes RGB images, but the input has {} channels",
                    f.input.channels
                ),
                "set `channels: 3`, or remove the `data` section",
            );
        }
        check_data(d, f.input.height, f.input.width, &mut err);
    }
}

fn check_data(d: &DataDecl, height: usize, width: usize, err: &mut impl FnMut(&str, String, &str)) {
    if d.center_crop > d.resize_short_side {
        err(
            "data.center_crop",
            format!("center_crop {} is larger than resize_short_side {}", d.center_crop, d.resize_short_side),
            "crop at most the resized short side (the paper: 256 and 256)",
        );
    }
    if height != width {
        err(
            "input",
            "the data pipeline makes square crops but the input is not square".into(),
            "make height equal width",
        );
    } else if height > d.center_crop {
        err(
            "data.center_crop",
            format!(
                "the {height}x{height} input is larger than the {0}x{0} centre crop it is cut from",
                d.center_crop
            ),
            "make center_crop at least the input size",
        );
    } else if !d.random_crop && height != d.center_crop {
        err(
            "data.random_crop",
            format!(
                "random_crop is off, so the {0}x{0} centre crop must equal the {height}x{height} input",
                d.center_crop
            ),
            "turn random_crop on, or set center_crop to the input size",
        );
    }
    if let Lighting::Pca { std, .. } = d.lighting {
        if !(std >= 0.0 && std.is_finite()) {
            err("data.lighting", format!("PCA lighting std {std} is negative"), "the paper uses std: 0.1");
        }
    }
    if let Some(s) = d.std {
        if s.iter().any(|v| *v <= 0.0) {
            err(
                "data.std",
                "a channel standard deviation is not positive".into(),
                "use positive values, 0-255 scale",
            );
        }
    }
}
