//! `alexrt pack`: an ImageNet-layout folder into shards ([`super`] describes the layout).
//!
//! Images are read, decoded (an unreadable one is skipped and counted, as the folder loader
//! does) and resized on a thread pool, a chunk at a time, and written in listing order by one
//! writer: the same folder gives the same bytes on any number of threads. A rerun keeps the
//! shards whose index is written and continues after the last of them.

use std::path::{Path, PathBuf};

use image::{ImageFormat, RgbImage};
use rayon::prelude::*;

use super::index::{ImageKind, PackSettings, ShardIndex};
use super::writer::{remove_leftovers, ShardWriter};
use super::{index_path, read_classes, shard_path, CLASSES_FILE};
use crate::data::augment::{centre_square, resize, resize_region, short_side_to, Pipeline};
use crate::data::band::encode_jpeg;
use crate::data::decode::decode;
use crate::data::folder::one_line;
use crate::data::{Dataset, ImageFolder};

/// Images prepared in parallel before the writer takes them, in order.
const CHUNK: usize = 256;

/// How to pack.
#[derive(Debug, Clone, Copy)]
pub struct PackOptions {
    /// Images whose short side is another length are resized to it; others keep their bytes.
    pub short_side: u32,
    /// Whether a resized image keeps only its centre square (what every pipeline that resizes to
    /// this short side reads), or the whole of it.
    pub centre_square: bool,
    /// The JPEG quality of resized images.
    pub jpeg_quality: u8,
    /// A shard ends before the sample that would take it past this size.
    pub shard_bytes: u64,
    /// Threads that read, decode and resize.
    pub workers: usize,
}

/// What packing tells as it goes.
pub trait PackProgress: Sync {
    /// A split starts: `images` listed, `done` of them already packed by an earlier run.
    fn start(&self, split: &str, images: usize, done: usize);
    /// `done` of the split's images are packed.
    fn advance(&self, done: usize);
    /// An image was skipped; `why` names the file.
    fn skipped(&self, why: &str);
}

/// What packing one split did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitReport {
    pub split: String,
    /// Images the folder's split listed.
    pub listed: usize,
    /// Samples and shards in the split's shards, those of earlier runs included.
    pub samples: usize,
    pub shards: usize,
    /// Shards an earlier run had written (kept as they were).
    pub kept_shards: usize,
    /// Images this run resized (the others it packed kept their bytes).
    pub resized: usize,
    /// Unreadable images skipped, by this run and earlier ones.
    pub skipped: usize,
    /// What listing the folder's split found besides images (skipped, as training skips them).
    pub stray_files: usize,
    pub unknown_classes: Vec<String>,
}

/// An image as it goes into a shard.
struct Prepared {
    bytes: Vec<u8>,
    kind: ImageKind,
    resized: bool,
}

/// Packs `dir`'s `train/` (and `val/`, when there is one) into `out`, with `out/classes.txt` the
/// training split's class folders in sorted order.
pub fn pack(
    dir: &Path,
    out: &Path,
    options: &PackOptions,
    progress: &dyn PackProgress,
) -> Result<Vec<SplitReport>, String> {
    if options.short_side == 0 || options.shard_bytes == 0 || !(1..=100).contains(&options.jpeg_quality) {
        return Err("--short-side and --shard-mib must be above 0, and the JPEG quality 1 to 100".into());
    }
    if super::is_shard_folder(dir) {
        return Err(format!(
            "{}: this is a shard folder already; give the ImageNet-layout folder (DIR/train/<class>/<image>) it was packed from",
            dir.display()
        ));
    }
    let (from, to) = (resolved(dir), resolved(out));
    if to == from || to.starts_with(from.join("train")) || to.starts_with(from.join("val")) {
        return Err(format!(
            "{}: the shards would be written into the folder being packed ({}), among its images; give an --out folder outside it, such as {}-shards",
            out.display(),
            dir.display(),
            from.display()
        ));
    }
    // Listing only: the pipeline is never run.
    let listing = Pipeline::from_spec(None, [3, 8, 8], None)?;
    let train = ImageFolder::open(dir, "train", None, listing.clone())?;
    let classes = train.class_names();
    if let Some(c) = classes.iter().find(|c| c.contains(['\n', '\r'])) {
        return Err(format!(
            "{}: a class folder's name holds a line break, which classes.txt cannot; rename the folder",
            dir.join("train").join(c).display()
        ));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("{}: cannot create the shard folder ({e})", out.display()))?;
    let classes_path = out.join(CLASSES_FILE);
    if classes_path.exists() {
        if read_classes(out)? != classes {
            return Err(format!(
                "{}: lists other classes than {}; pack into an empty folder",
                classes_path.display(),
                dir.join("train").display()
            ));
        }
    } else {
        let text: String = classes.iter().map(|c| format!("{c}\n")).collect();
        alexir::plan::write_atomically(&classes_path, text.as_bytes())
            .map_err(|e| format!("{}: {e}", classes_path.display()))?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.workers.max(1))
        .build()
        .map_err(|e| format!("cannot start {} packing threads: {e}", options.workers))?;
    let mut reports =
        vec![pool.install(|| pack_split(&train, "train", &out.join("train"), options, progress))?];
    if dir.join("val").is_dir() {
        let val = ImageFolder::open(dir, "val", Some(&classes), listing)?;
        reports.push(pool.install(|| pack_split(&val, "val", &out.join("val"), options, progress))?);
    }
    Ok(reports)
}

/// `path` as it will be once created: its nearest existing ancestor resolved (symbolic links,
/// `..`), the rest of it appended; `path` itself where nothing of it resolves.
fn resolved(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(mut real) = at.canonicalize() {
            real.extend(rest.iter().rev());
            return real;
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                at = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The CRC-32 of a listing: each image's label and file name.
fn listing_crc(folder: &ImageFolder) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for i in 0..folder.len() {
        h.update(&(folder.label(i) as u32).to_le_bytes());
        if let Some(name) = folder.path(i).file_name() {
            h.update(name.as_encoded_bytes());
        }
        h.update(&[0]);
    }
    h.finalize()
}

/// The shards an earlier run finished (the written prefix): how many, the listing position
/// after them, and their samples and skipped images. A shard packed with other options or from
/// another listing is refused, naming them.
fn finished_shards(dir: &Path, settings: &PackSettings) -> Result<(usize, u64, usize, usize), String> {
    let (mut n, mut end, mut samples, mut skipped) = (0, 0, 0, 0);
    while index_path(dir, n).is_file() {
        let path = index_path(dir, n);
        let index = read_index(&path)?;
        let was = index.settings;
        let why = if (was.sources, was.listing_crc) != (settings.sources, settings.listing_crc) {
            format!(
                "was packed from another listing of the folder ({} images then, {} now)",
                was.sources, settings.sources
            )
        } else if was != *settings {
            format!(
                "was packed with --short-side {}{} --jpeg-quality {} --shard-mib {:.4}; give those options to continue it",
                was.short_side,
                if was.square == 0 { " --whole-image" } else { "" },
                was.jpeg_quality,
                was.shard_bytes as f64 / 1048576.0
            )
        } else if index.first_source != end {
            format!(
                "starts at listing position {}, but the shard before it ends at {end}",
                index.first_source
            )
        } else {
            String::new()
        };
        if !why.is_empty() {
            return Err(format!("{}: {why}; or pack into an empty folder", path.display()));
        }
        let tar = shard_path(dir, n);
        if std::fs::metadata(&tar).map(|m| m.len()).ok() != Some(index.tar_bytes) {
            return Err(format!(
                "{}: missing, or not the length its index says; delete it and {}, then run `alexrt pack` again",
                tar.display(),
                path.display()
            ));
        }
        end = index.end_source;
        samples += index.entries.len();
        skipped += index.skipped as usize;
        n += 1;
    }
    Ok((n, end, samples, skipped))
}

/// Reads and checks an index file; an error names it and the fix.
pub fn read_index(path: &Path) -> Result<ShardIndex, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ShardIndex::decode(&bytes).map_err(|e| {
        format!(
            "{}: {e}; delete it and its shard, then run `alexrt pack` again to write them anew",
            path.display()
        )
    })
}

fn pack_split(
    folder: &ImageFolder,
    split: &str,
    dir: &Path,
    options: &PackOptions,
    progress: &dyn PackProgress,
) -> Result<SplitReport, String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    remove_leftovers(dir).map_err(io)?;
    let settings = PackSettings {
        short_side: options.short_side,
        square: if options.centre_square { options.short_side } else { 0 },
        jpeg_quality: options.jpeg_quality as u32,
        shard_bytes: options.shard_bytes,
        sources: folder.len() as u64,
        listing_crc: listing_crc(folder),
    };
    let (kept, start, kept_samples, kept_skipped) = finished_shards(dir, &settings)?;
    let n = folder.len();
    progress.start(split, n, start as usize);
    let mut writer = ShardWriter::new(dir, settings, kept, start);
    let (mut samples, mut resized, mut skipped) = (kept_samples, 0, kept_skipped);
    let sources: Vec<usize> = (start as usize..n).collect();
    for chunk in sources.chunks(CHUNK) {
        let prepared: Vec<Result<Prepared, String>> =
            chunk.par_iter().map(|&i| prepare(&folder.path(i), options)).collect();
        for (&i, p) in chunk.iter().zip(prepared) {
            match p {
                Ok(p) => {
                    writer.add(i as u64, folder.label(i) as u32, &p.bytes, p.kind)?;
                    samples += 1;
                    resized += usize::from(p.resized);
                }
                Err(why) => {
                    writer.skip();
                    skipped += 1;
                    progress.skipped(&why);
                }
            }
        }
        progress.advance(chunk[chunk.len() - 1] + 1);
    }
    if !writer.is_empty() {
        writer.finish(n as u64)?;
    } else if writer.skipped() > 0 {
        // Only unreadable images since the last shard: that shard covers them.
        if kept + writer.finished == 0 {
            return Err(format!(
                "{}: no readable images, so no shards were written",
                folder.path(0).parent().and_then(Path::parent).unwrap_or(dir).display()
            ));
        }
        let last = index_path(dir, kept + writer.finished - 1);
        let mut index = read_index(&last)?;
        index.end_source = n as u64;
        index.skipped += writer.skipped();
        alexir::plan::write_atomically(&last, &index.encode())
            .map_err(|e| format!("{}: {e}", last.display()))?;
    }
    Ok(SplitReport {
        split: split.to_string(),
        listed: n,
        samples,
        shards: kept + writer.finished,
        kept_shards: kept,
        resized,
        skipped,
        stray_files: folder.report.stray_files,
        unknown_classes: folder.report.unknown_classes.clone(),
    })
}

/// Reads image `path` for a shard: decoded (so that an unreadable one is found now), resized (its
/// centre square cut out, with the `centre_square` option) and re-encoded as JPEG (4:2:0 chroma,
/// checked to decode back) when its short side is not the target (shorter ones are enlarged, as
/// training would enlarge them each time it read them), else its bytes as they are. An error is
/// one line that names the file.
fn prepare(path: &Path, options: &PackOptions) -> Result<Prepared, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: {}", path.display(), one_line(e));
    let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
    let img = decode(&bytes).map_err(|e| fail(&e))?;
    let kind = match image::guess_format(&bytes) {
        Ok(ImageFormat::Png) => ImageKind::Png,
        _ => ImageKind::Jpeg,
    };
    let (w, h) = img.dimensions();
    if w.min(h) == options.short_side {
        return Ok(Prepared { bytes, kind, resized: false });
    }
    let (nw, nh) = short_side_to(w, h, options.short_side);
    let small = if options.centre_square {
        // The square the pipeline takes, at the same place (`augment::centre_square` serves both),
        // the only part resized.
        let (x0, y0, side) = centre_square(nw, nh, options.short_side);
        resize_region(&img, (nw, nh), [x0, y0, side, side])
    } else {
        resize(&img, nw, nh)
    };
    // 4:2:0 first (a third less to decode); 4:4:4 should it not decode back to the image.
    for sampling in [jpeg_encoder::SamplingFactor::R_4_2_0, jpeg_encoder::SamplingFactor::R_4_4_4] {
        let bytes = encode_jpeg(&small, sampling, options.jpeg_quality).map_err(|e| fail(&e))?;
        if decodes_back(&bytes, &small) {
            return Ok(Prepared { bytes, kind: ImageKind::Jpeg, resized: true });
        }
    }
    Err(fail(&"the JPEG it was re-encoded to does not decode back to it"))
}

/// Whether JPEG `bytes` decode (as training decodes them) to within JPEG's loss of `img`: a mean
/// difference under 8 levels (quality 90 gives under 1 on photographs; a mis-decoded image, tens).
fn decodes_back(bytes: &[u8], img: &RgbImage) -> bool {
    decode(bytes).is_ok_and(|d| {
        let (a, b) = (d.as_raw(), img.as_raw());
        let diff: u64 = a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
        a.len() == b.len() && diff < 8 * a.len() as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_jpeg_is_checked_against_the_image_it_was_made_from() {
        let img = RgbImage::from_fn(40, 32, |x, y| image::Rgb([(x * 6) as u8, (y * 7) as u8, 90]));
        let mut other = img.clone();
        other.pixels_mut().for_each(|p| p.0 = [255 - p.0[0], 255 - p.0[1], 30]);
        for sampling in [jpeg_encoder::SamplingFactor::R_4_2_0, jpeg_encoder::SamplingFactor::R_4_4_4] {
            let bytes = encode_jpeg(&img, sampling, 90).unwrap();
            assert!(decodes_back(&bytes, &img), "{sampling:?}");
            assert!(!decodes_back(&bytes, &other), "{sampling:?}: another image passed");
            assert!(!decodes_back(&bytes[..bytes.len() / 3], &img), "a cut JPEG passed");
        }
    }
}
