//! `alexrt eval` (top-1 and top-5 on a validation folder, centre crop and ten crops) and
//! `alexrt infer` (the top-5 classes of images).

use std::path::PathBuf;

use crate::data::{sources, Dataset, ImageFolder};
use crate::eval::{evaluate_folder, top_classes};
use crate::exec::{Batch, Executor};
use crate::kernels::KernelBackend;
use crate::{checkpoint, RunError};
use alexir::plan::Plan;

use super::{bar, DeviceArg};

#[derive(clap::Args)]
pub struct EvalArgs {
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// A checkpoint (its class list is used) or weights file (the class list then comes from
    /// DIR/train's folders, or DIR/val's).
    #[arg(long)]
    weights: PathBuf,
    /// The dataset folder; DIR/val is evaluated.
    #[arg(long)]
    data: PathBuf,
    /// Skip the ten-crop evaluation (ten forward passes per image).
    #[arg(long)]
    center_only: bool,
}

#[derive(clap::Args)]
pub struct InferArgs {
    plan: PathBuf,
    #[command(flatten)]
    pub device: DeviceArg,
    /// A checkpoint (its class names are printed) or weights file.
    #[arg(long)]
    weights: PathBuf,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run_eval<B: KernelBackend>(args: EvalArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let mut exec = Executor::<B>::new(&plan, device)?;
    let meta = checkpoint::load_params(&mut exec, &args.weights)?;
    let (pipeline, _) = sources::pipeline(&plan, &args.data, meta.as_ref().and_then(|m| m.stats.as_ref()))?;
    let open = |split: &str, classes: Option<&[String]>| {
        ImageFolder::open(&args.data, split, classes, pipeline.clone()).map_err(RunError::Input)
    };
    // Class indices are sorted folder names: from the checkpoint, else DIR/train, else DIR/val
    // itself (the same order when it holds every class; the count is checked below).
    let classes = match &meta {
        Some(m) => m.classes.clone(),
        None if args.data.join("train").is_dir() => open("train", None)?.class_names(),
        None => {
            eprintln!(
                "note: the weights carry no class list and {} has no train/ folder; classes are val/'s folders in sorted order",
                args.data.display()
            );
            open("val", None)?.class_names()
        }
    };
    let k = plan.graph.spec.classes;
    if classes.len() != k {
        return Err(RunError::Input(format!(
            "{}: {} classes, but the graph has `classes: {k}`; evaluate with the dataset the weights were trained on",
            args.data.display(),
            classes.len()
        )));
    }
    let val = open("val", Some(&classes))?;
    let pb = bar(val.len() as u64, "evaluating [{bar:30}] {pos}/{len} {msg}");
    let report =
        evaluate_folder(&mut exec, &val, plan.memory.batch_size, args.center_only, |n| pb.inc(n as u64))?;
    pb.finish_and_clear();
    let line = |what: &str, m: &crate::metrics::Metrics| {
        format!(
            "  {what} top-1 {:.2}%, top-5 {:.2}% (error {:.2}% / {:.2}%)\n",
            100.0 * m.top1,
            100.0 * m.top5,
            100.0 * (1.0 - m.top1),
            100.0 * (1.0 - m.top5)
        )
    };
    let mut text = format!(
        "{}: {} validation images{}\n",
        args.data.display(),
        report.center.images,
        if report.skipped > 0 { format!(" ({} unreadable, skipped)", report.skipped) } else { String::new() },
    );
    text += &line("centre crop:", &report.center);
    if let Some(ten) = &report.ten {
        text += &line("ten crops:  ", ten);
    }
    crate::say(&text);
    Ok(())
}

pub fn run_infer<B: KernelBackend>(args: InferArgs, device: B::Device) -> Result<(), RunError> {
    let plan = Plan::read(&args.plan)?;
    let mut exec = Executor::<B>::new(&plan, device)?;
    let meta = checkpoint::load_params(&mut exec, &args.weights)?;
    let stats = meta.as_ref().and_then(|m| m.stats.clone());
    let pipeline = crate::data::augment::Pipeline::from_spec(
        plan.graph.spec.data.as_ref(),
        sources::input_shape(&plan)?,
        stats.as_ref(),
    )
    .map_err(RunError::Input)?;
    let k = plan.graph.spec.classes;
    let names: Vec<String> = match &meta {
        Some(m) if m.classes.len() == k => m.classes.clone(),
        _ => (0..k).map(|c| format!("class {c}")).collect(),
    };
    let mut text = String::new();
    for path in &args.images {
        let img = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| RunError::Input(format!("{}: {e}", path.display())))?
            .decode()
            .map_err(|e| RunError::Input(format!("{}: not a readable image ({e})", path.display())))?
            .to_rgb8();
        let out = exec.forward(Batch { images: pipeline.prepare(&img, None), labels: vec![0] })?;
        text += &format!("{}:\n", path.display());
        for (c, p) in top_classes(&out.logits[..k], 5) {
            text += &format!("  {:6.2}%  {}\n", 100.0 * p, names[c]);
        }
    }
    crate::say(&text);
    Ok(())
}
