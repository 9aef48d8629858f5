//! Indexes for WebDataset shards that other tools wrote: one pass over a tar file, its samples
//! grouped by key as WebDataset groups them (a member's key is its path up to the first dot of
//! its file name, the rest its extension), an image (`jpg`, `jpeg` or `png`) and a class index
//! (`cls`, decimal text) taken from each, other members (`json`, `txt`, ...) ignored. The index
//! is the same format as `alexrt pack`'s, with a short side of 0 (the mark of an index built by
//! reading) and the shard's modification time in place of the target shard size, and is written
//! beside the shard (or in the cache folder, where the shard's folder cannot be written: `read`)
//! so that the scan happens once (again when the shard changes).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::index::{ImageKind, IndexEntry, PackSettings, ShardIndex};

/// A file's modification time in nanoseconds since 1970 (0 where the file system keeps none):
/// what an index built by reading records of its shard, in place of the packing options.
fn modified_ns(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A sample being gathered: its key, image (offset, size, CRC-32, kind) and label.
struct Pending {
    key: String,
    image: Option<(u64, u64, u32, ImageKind)>,
    label: Option<u32>,
}

/// The key and lowercase extension of a member path, as WebDataset splits it.
fn split_name(path: &str) -> Option<(&str, String)> {
    let start = path.rfind('/').map_or(0, |i| i + 1);
    let dot = path[start..].find('.')? + start;
    Some((&path[..dot], path[dot + 1..].to_ascii_lowercase()))
}

/// Indexes the WebDataset shard `tar`, its samples numbered from `first`: the index, whose
/// `skipped` counts the keys that lacked an image or a class.
pub fn index_foreign_shard(tar: &Path, first: u64) -> Result<ShardIndex, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: not a readable tar file ({e})", tar.display());
    let file = File::open(tar).map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    let (tar_bytes, modified) = (meta.len(), modified_ns(&meta));
    let mut archive = tar::Archive::new(BufReader::with_capacity(1 << 20, file));
    let (mut entries, mut skipped, mut pending) = (Vec::new(), 0u64, None::<Pending>);
    let mut flush = |p: Option<Pending>, entries: &mut Vec<IndexEntry>| {
        if let Some(p) = p {
            match (p.image, p.label) {
                (Some((offset, size, crc, kind)), Some(label)) => {
                    let source = first + entries.len() as u64;
                    entries.push(IndexEntry { source, offset, size, label, crc, kind });
                }
                _ => skipped += 1,
            }
        }
    };
    for member in archive.entries().map_err(|e| fail(&e))? {
        let mut member = member.map_err(|e| fail(&e))?;
        if !member.header().entry_type().is_file() {
            continue;
        }
        let path = member.path().map_err(|e| fail(&e))?.to_string_lossy().into_owned();
        let Some((key, ext)) = split_name(&path) else { continue };
        if pending.as_ref().is_none_or(|p| p.key != key) {
            flush(pending.take(), &mut entries);
            pending = Some(Pending { key: key.to_string(), image: None, label: None });
        }
        let Some(p) = pending.as_mut() else { continue };
        let kind = match ext.as_str() {
            "jpg" | "jpeg" => Some(ImageKind::Jpeg),
            "png" => Some(ImageKind::Png),
            _ => None,
        };
        if let Some(kind) = kind {
            let (offset, size) = (member.raw_file_position(), member.size());
            let mut bytes = Vec::with_capacity(size as usize);
            member.read_to_end(&mut bytes).map_err(|e| fail(&e))?;
            p.image = Some((offset, size, crc32fast::hash(&bytes), kind));
        } else if ext == "cls" {
            let mut text = String::new();
            member.read_to_string(&mut text).map_err(|e| fail(&e))?;
            let label = text.trim().parse::<u32>().map_err(|_| {
                format!(
                    "{}: {path} holds {:?}, not a class index; a .cls member holds a decimal number",
                    tar.display(),
                    text.trim()
                )
            })?;
            p.label = Some(label);
        }
    }
    flush(pending.take(), &mut entries);
    let end = first + entries.len() as u64;
    Ok(ShardIndex {
        settings: PackSettings {
            short_side: 0,
            square: 0,
            jpeg_quality: 0,
            shard_bytes: modified,
            sources: end,
            listing_crc: 0,
        },
        first_source: first,
        end_source: end,
        skipped,
        tar_bytes,
        entries,
    })
}

/// The index at `idx` (beside `tar`, or in the cache folder) if it was built by reading this very
/// shard with its samples
/// numbered from `first` (its length, modification time, and first and last images' checksums,
/// as the index says); `None` when it must be built (again).
pub fn cached_index(idx: &Path, tar: &Path, first: u64) -> Option<ShardIndex> {
    let index = ShardIndex::decode(&std::fs::read(idx).ok()?).ok()?;
    let mut file = File::open(tar).ok()?;
    let meta = file.metadata().ok()?;
    let fits = index.settings.short_side == 0
        && index.tar_bytes == meta.len()
        && index.settings.shard_bytes == modified_ns(&meta)
        && index.first_source == first;
    let ends = [index.entries.first(), index.entries.last()];
    let same = ends.into_iter().flatten().all(|e| {
        let mut bytes = vec![0u8; e.size as usize];
        file.seek(SeekFrom::Start(e.offset)).is_ok()
            && file.read_exact(&mut bytes).is_ok()
            && crc32fast::hash(&bytes) == e.crc
    });
    (fits && same).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn a_members_key_ends_at_the_first_dot_of_its_file_name() {
        assert_eq!(split_name("n0144/n0144_10026.JPEG"), Some(("n0144/n0144_10026", "jpeg".into())));
        assert_eq!(split_name("a.b/c.seg.png"), Some(("a.b/c", "seg.png".into())));
        assert_eq!(split_name("00000001.cls"), Some(("00000001", "cls".into())));
        assert_eq!(split_name("dir/noext"), None);
    }
}
