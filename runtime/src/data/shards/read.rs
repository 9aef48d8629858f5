//! One split of a shard folder as a [`Dataset`]: the shards' indexes read and checked when it
//! opens, each sample read with one positioned read of the tar file (not memory-mapped: a shard
//! cut short under a mapping would end the process with SIGBUS rather than an error; the page
//! cache serves both alike) and checked against its CRC-32.
//!
//! Samples are numbered in listing order across the shards, which is the folder's order less
//! its unreadable images: a folder without any gives the same numbering, hence the same epochs.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::index::{IndexEntry, ShardIndex};
use super::pack::read_index;
use super::{index_path, key, read_classes, scan, shard_path, CLASSES_FILE};
use crate::data::augment::Pipeline;
use crate::data::band::Band;
use crate::data::folder::one_line;
use crate::data::{Dataset, ImageSet, ListingReport, Sample};
use crate::exec::Batch;

/// An open shard.
struct Shard {
    path: PathBuf,
    file: File,
}

/// One split (`train` or `val`) of a shard folder.
pub struct ShardSplit {
    classes: Vec<String>,
    shards: Vec<Shard>,
    /// Each sample's shard and index entry, in listing order.
    entries: Vec<(u32, IndexEntry)>,
    report: ListingReport,
    pipeline: Pipeline,
}

/// The fix for a damaged shard or index.
fn repack(tar: &Path, index: &Path) -> String {
    format!(
        "delete {} and {}, then run `alexrt pack --data DIR --out SHARDS` again with the options it was packed with to write them anew",
        tar.display(),
        index.display()
    )
}

impl ShardSplit {
    /// An error of sample `i`'s image, naming its shard and key.
    fn sample_error(&self, i: usize, e: &dyn std::fmt::Display) -> String {
        format!("{}: sample {}: {}", self.shard(i).display(), key(self.entries[i].1.source), one_line(e))
    }

    /// Opens `dir/split`: shards that `alexrt pack` wrote (every index and each shard's length
    /// checked), or else WebDataset shards another tool wrote (every `*.tar` of the split, in
    /// name order, indexed at first use: [`super::scan`]). The classes are `classes.txt`'s; for
    /// shards without one, `classes` (the training split's, or a checkpoint's), else the class
    /// indices found, named by number. With `classes`, `classes.txt` must list the same.
    pub fn open(
        dir: &Path,
        split: &str,
        classes: Option<&[String]>,
        pipeline: Pipeline,
    ) -> Result<Self, String> {
        let split_dir = dir.join(split);
        let ours = index_path(&split_dir, 0).is_file();
        let (shards, entries, skipped) = if ours { packed(&split_dir)? } else { foreign(dir, &split_dir)? };
        let list = dir.join(CLASSES_FILE);
        let own = if list.exists() || ours {
            read_classes(dir)?
        } else if let Some(c) = classes {
            c.to_vec()
        } else {
            let top = entries.iter().map(|e| e.1.label as usize + 1).max().unwrap_or(0);
            (0..top).map(|c| c.to_string()).collect()
        };
        if let Some(wanted) = classes {
            if wanted != own.as_slice() {
                return Err(format!(
                    "{}: lists {} classes that differ from the {} expected (the weights' or the training split's); use the shards of the dataset they came from",
                    list.display(),
                    own.len(),
                    wanted.len()
                ));
            }
        }
        if let Some((s, e)) = entries.iter().find(|e| e.1.label as usize >= own.len()) {
            let tar: &Path = &shards[*s as usize].path;
            let fix = if ours {
                repack(tar, &tar.with_extension("idx"))
            } else {
                format!("write a {} beside {split}/ that names every class, one a line", list.display())
            };
            return Err(format!(
                "{}: sample {} has class index {}, but there are {} classes (those of {}); {fix}",
                tar.display(),
                key(e.source),
                e.label,
                own.len(),
                if list.exists() { list.display().to_string() } else { "the training split".into() },
            ));
        }
        let report = ListingReport {
            images: entries.len(),
            shards: shards.len(),
            skipped_when_packed: skipped,
            ..Default::default()
        };
        Ok(ShardSplit { classes: own, shards, entries, report, pipeline })
    }

    /// The tar file that holds sample `i`.
    pub fn shard(&self, i: usize) -> &Path {
        &self.shards[self.entries[i].0 as usize].path
    }

    /// Sample `i`'s index entry.
    pub fn entry(&self, i: usize) -> &IndexEntry {
        &self.entries[i].1
    }

    /// The stored bytes of sample `i`'s image, checked against the index's CRC-32.
    pub fn image_bytes(&self, i: usize) -> Result<Vec<u8>, String> {
        let (s, e) = &self.entries[i];
        let shard = &self.shards[*s as usize];
        let mut buf = vec![0u8; e.size as usize];
        read_at(shard, &mut buf, e.offset).map_err(|err| {
            format!("{}: sample {} at byte {}: {err}", shard.path.display(), key(e.source), e.offset)
        })?;
        if crc32fast::hash(&buf) != e.crc {
            let idx = shard.path.with_extension("idx");
            return Err(format!(
                "{}: sample {} (bytes {} to {}) does not match its checksum: the shard is damaged; {}",
                shard.path.display(),
                key(e.source),
                e.offset,
                e.offset + e.size,
                repack(&shard.path, &idx)
            ));
        }
        Ok(buf)
    }
}

/// A split's shards, their samples (shard and entry) in order, and the images packing skipped.
type Opened = (Vec<Shard>, Vec<(u32, IndexEntry)>, usize);

/// The shards of `split_dir` that `alexrt pack` wrote, in order, each index read and checked.
fn packed(split_dir: &Path) -> Result<Opened, String> {
    let (mut shards, mut entries, mut end, mut skipped, mut settings) = (Vec::new(), Vec::new(), 0, 0, None);
    while index_path(split_dir, shards.len()).is_file() {
        let n = shards.len();
        let (idx, tar) = (index_path(split_dir, n), shard_path(split_dir, n));
        let index = read_index(&idx)?;
        if index.first_source != end || settings.is_some_and(|s| s != index.settings) {
            return Err(format!(
                "{}: does not follow the shard before it (another packing run's?); pack into an empty folder",
                idx.display()
            ));
        }
        settings = Some(index.settings);
        let file = File::open(&tar).map_err(|e| format!("{}: {e}; {}", tar.display(), repack(&tar, &idx)))?;
        let len = file.metadata().map_err(|e| format!("{}: {e}", tar.display()))?.len();
        if len != index.tar_bytes {
            return Err(format!(
                "{}: {len} bytes, but its index says {}: the shard is damaged or cut short; {}",
                tar.display(),
                index.tar_bytes,
                repack(&tar, &idx)
            ));
        }
        entries.extend(index.entries.iter().map(|e| (n as u32, *e)));
        end = index.end_source;
        skipped += index.skipped as usize;
        shards.push(Shard { path: tar, file });
    }
    let listed = settings.map_or(0, |s| s.sources);
    if end != listed {
        return Err(format!(
            "{}: the shards cover {end} of the {listed} images listed when packing: packing stopped early; run `alexrt pack` again to finish it",
            split_dir.display()
        ));
    }
    Ok((shards, entries, skipped))
}

/// Every `*.tar` of `split_dir`, in name order, as WebDataset shards: each index read from
/// beside it, or from the cache folder ([`index_cache`]), when it was built from this shard; else
/// built by one pass and written beside it, or, where the shards' folder cannot be written, in the
/// cache folder (and where neither can, kept in memory and built again next time).
fn foreign(dir: &Path, split_dir: &Path) -> Result<Opened, String> {
    let listing = std::fs::read_dir(split_dir).map_err(|e| {
        format!(
            "{}: no shards found ({e}); expected the shards of `alexrt pack --data DIR --out {}`, or WebDataset .tar shards",
            split_dir.display(),
            dir.display()
        )
    })?;
    let mut tars: Vec<PathBuf> = listing
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar") && p.is_file())
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    tars.sort();
    if tars.is_empty() {
        return Err(format!(
            "{}: no shards found; expected the shards of `alexrt pack --data DIR --out {}`, or WebDataset .tar shards",
            split_dir.display(),
            dir.display()
        ));
    }
    if tars[0] == shard_path(split_dir, 0) {
        return Err(format!(
            "{}: has no index: `alexrt pack` stopped before writing it; run it again to finish the packing",
            tars[0].display()
        ));
    }
    let (mut shards, mut entries, mut skipped, mut first) = (Vec::new(), Vec::new(), 0, 0);
    for tar in tars {
        let index = foreign_index(&tar, first, &tar.with_extension("idx"), index_cache(&tar).as_deref())?;
        let file = File::open(&tar).map_err(|e| format!("{}: {e}", tar.display()))?;
        let n = shards.len() as u32;
        entries.extend(index.entries.iter().map(|e| (n, *e)));
        first = index.end_source;
        skipped += index.skipped as usize;
        shards.push(Shard { path: tar, file });
    }
    if entries.is_empty() {
        return Err(format!(
            "{}: the .tar files hold no sample with an image (.jpg, .jpeg, .png) and a class (.cls)",
            split_dir.display()
        ));
    }
    Ok((shards, entries, skipped))
}

/// The index of foreign shard `tar` (samples numbered from `first`): read from `beside` or
/// `cached` where one there fits the shard, else built and written to `beside`, or to `cached`
/// where `beside` cannot be written.
fn foreign_index(tar: &Path, first: u64, beside: &Path, cached: Option<&Path>) -> Result<ShardIndex, String> {
    let found = scan::cached_index(beside, tar, first)
        .or_else(|| cached.and_then(|c| scan::cached_index(c, tar, first)));
    if let Some(index) = found {
        return Ok(index);
    }
    let index = scan::index_foreign_shard(tar, first)?;
    let bytes = index.encode();
    if alexir::plan::write_atomically(beside, &bytes).is_err() {
        if let Some(c) = cached {
            let _ = c.parent().map(std::fs::create_dir_all);
            let _ = alexir::plan::write_atomically(c, &bytes);
        }
    }
    Ok(index)
}

/// Where the index of a foreign shard `tar` goes when its own folder cannot be written:
/// `$XDG_CACHE_HOME/alexrt/shard-indexes` (else `~/.cache/...`), named by a hash of the shard's
/// full path. An index found there is used only if it still fits the shard (its length,
/// modification time and end samples' checksums), like one beside it.
fn index_cache(tar: &Path) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    let full = std::fs::canonicalize(tar).ok()?;
    let mut h = std::hash::DefaultHasher::new();
    full.hash(&mut h);
    Some(crate::kernel_cache::user_cache()?.join("shard-indexes").join(format!("{:016x}.idx", h.finish())))
}

/// Reads `buf.len()` bytes of `shard` from `offset`.
fn read_at(shard: &Shard, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(&shard.file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek};
        let mut f = File::open(&shard.path)?;
        f.seek(std::io::SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

impl Dataset for ShardSplit {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }

    fn label(&self, i: usize) -> usize {
        self.entries[i].1.label as usize
    }

    fn load(&self, i: usize, augment: Option<u64>) -> Result<Sample, String> {
        crate::data::image_sample(self, i, augment)
    }

    fn batch(&self, indices: &[usize], augment: Option<u64>) -> (Batch, Vec<(usize, String)>) {
        crate::data::image_batch(self, indices, augment)
    }
}

impl ImageSet for ShardSplit {
    fn decode_image(&self, i: usize) -> Result<image::RgbImage, String> {
        let bytes = self.image_bytes(i)?;
        crate::data::decode::decode(&bytes).map_err(|e| self.sample_error(i, &e))
    }

    fn decode_rows(&self, i: usize, rows: &dyn Fn(u32, u32) -> Option<(u32, u32)>) -> Result<Band, String> {
        let bytes = self.image_bytes(i)?;
        crate::data::band::decode_rows(&bytes, rows).map_err(|e| self.sample_error(i, &e))
    }

    fn image_pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn listing(&self) -> &ListingReport {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_that_cannot_go_beside_its_shard_goes_to_the_cache_and_is_read_from_there() {
        let dir = std::env::temp_dir().join(format!("alexrt-index-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tar = dir.join("part.tar");
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&image::RgbImage::new(4, 3)).unwrap();
        {
            let mut b = ::tar::Builder::new(File::create(&tar).unwrap());
            for (name, data) in [("a.jpg", &jpeg[..]), ("a.cls", b"1"), ("b.jpg", &jpeg[..]), ("b.cls", b"0")]
            {
                let mut h = ::tar::Header::new_ustar();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data).unwrap();
            }
            b.finish().unwrap();
        }
        // Beside the shard is unwritable here: its folder does not exist.
        let (beside, cached) = (dir.join("no-such-folder/part.idx"), dir.join("cache/x/part.idx"));
        let built = foreign_index(&tar, 0, &beside, Some(&cached)).unwrap();
        assert_eq!(built.entries.len(), 2);
        assert!(!beside.exists() && cached.is_file());
        let written = std::fs::metadata(&cached).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let read = foreign_index(&tar, 0, &beside, Some(&cached)).unwrap();
        assert_eq!(read.entries, built.entries);
        assert_eq!(std::fs::metadata(&cached).unwrap().modified().unwrap(), written, "read, not built again");
        // Another shard at the cached index's name is indexed anew.
        assert!(foreign_index(&tar, 5, &beside, Some(&cached)).unwrap().entries[0].source == 5);
        assert!(index_cache(&tar).is_some_and(|p| p.parent().unwrap().ends_with("alexrt/shard-indexes")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
