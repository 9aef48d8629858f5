//! `alexrt pack`: an ImageNet-layout folder into WebDataset-layout shards
//! ([`crate::data::shards`]), with a progress bar (a line every ten seconds when stderr is not a
//! terminal) and a summary per split.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::data::shards::{pack, PackOptions, PackProgress};
use crate::RunError;

use super::{bar, is_terminal};

#[derive(clap::Args)]
pub struct PackArgs {
    /// The ImageNet-layout folder: DIR/train/<class>/<image> (and DIR/val/<class>/<image>).
    #[arg(long)]
    data: PathBuf,
    /// The shard folder to write; a rerun into it continues where an earlier run stopped.
    #[arg(long)]
    out: PathBuf,
    /// Images whose short side is longer are resized to it and stored as JPEG; the others keep
    /// their bytes.
    #[arg(long, default_value_t = 256)]
    short_side: u32,
    /// Store a resized image whole instead of its centre square. Every graph that resizes to
    /// this short side reads only the centre square (the paper's 256x256), a quarter fewer
    /// pixels to decode for 4:3 photographs; keep whole images for other tools' crops.
    #[arg(long)]
    whole_image: bool,
    /// The size a shard stays under, in MiB (fractions allowed); a sample larger than it gets a
    /// shard of its own.
    #[arg(long, default_value_t = 1024.0)]
    shard_mib: f64,
    /// The JPEG quality (1-100) of resized images.
    #[arg(long, default_value_t = 90)]
    jpeg_quality: u8,
    /// Threads that read, decode and resize (default: one per core). The shards are the same
    /// bytes whatever the number.
    #[arg(long, value_parser = super::one_or_more)]
    workers: Option<NonZeroUsize>,
}

/// The bar (or the lines) of the split being packed.
struct Progress {
    terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
    /// The split, its image count, and when a line was last printed.
    state: Mutex<(String, usize, Instant)>,
}

impl PackProgress for Progress {
    fn start(&self, split: &str, images: usize, done: usize) {
        let mut pb = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = pb.take() {
            old.finish_and_clear();
        }
        let earlier =
            if done > 0 { format!(", {done} packed by an earlier run and kept") } else { String::new() };
        eprintln!("packing {split}: {images} images{earlier}");
        if self.terminal {
            let b = bar(
                images as u64,
                &format!("packing {split} [{{bar:30}}] {{pos}}/{{len}} images, eta {{eta}}"),
            );
            b.set_position(done as u64);
            *pb = Some(b);
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = (split.to_string(), images, Instant::now());
    }

    fn advance(&self, done: usize) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            b.set_position(done as u64);
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.2.elapsed() >= Duration::from_secs(10) {
            eprintln!("packing {}: {done}/{} images", state.0, state.1);
            state.2 = Instant::now();
        }
    }

    fn skipped(&self, why: &str) {
        match &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(b) => b.suspend(|| eprintln!("skipped an unreadable image: {why}")),
            None => eprintln!("skipped an unreadable image: {why}"),
        }
    }
}

pub fn run(args: PackArgs) -> Result<(), RunError> {
    if !(args.shard_mib.is_finite() && args.shard_mib > 0.0) {
        return Err(RunError::Input(format!(
            "--shard-mib {}: give a size in MiB above 0, such as 1024",
            args.shard_mib
        )));
    }
    let options = PackOptions {
        short_side: args.short_side,
        centre_square: !args.whole_image,
        jpeg_quality: args.jpeg_quality,
        shard_bytes: ((args.shard_mib * 1048576.0).round() as u64).max(1),
        workers: args.workers.map_or_else(
            || std::thread::available_parallelism().map_or(2, NonZeroUsize::get),
            NonZeroUsize::get,
        ),
    };
    let progress = Progress {
        terminal: is_terminal(),
        bar: Mutex::new(None),
        state: Mutex::new((String::new(), 0, Instant::now())),
    };
    let reports = pack(&args.data, &args.out, &options, &progress).map_err(RunError::Input);
    if let Some(b) = progress.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
        b.finish_and_clear();
    }
    let mut text = String::new();
    for r in reports? {
        let kept = if r.kept_shards > 0 {
            format!(" ({} kept from an earlier run)", r.kept_shards)
        } else {
            String::new()
        };
        text += &format!(
            "{}: {} of {} images in {}{kept} under {}; {} resized to a short side of {}{} by this run, the others' bytes kept; {} skipped\n",
            r.split,
            r.samples,
            r.listed,
            alexir::units::plural(r.shards, "shard", "shards"),
            args.out.join(&r.split).display(),
            r.resized,
            args.short_side,
            if args.whole_image { "" } else { " and cut to its centre square" },
            alexir::units::plural(r.skipped, "unreadable image", "unreadable images")
        );
        if r.stray_files > 0 {
            text += &format!(
                "  {} (not images, or not in a class folder) skipped\n",
                alexir::units::plural(r.stray_files, "stray file", "stray files")
            );
        }
        if !r.unknown_classes.is_empty() {
            text += &format!("  class folders that train/ lacks, skipped: {}\n", r.unknown_classes.join(" "));
        }
    }
    crate::say(&text);
    Ok(())
}
