//! Writing one split's shards in order: tar members with fixed metadata (so that the same images
//! give the same bytes), a new shard when the next sample would pass the target size, each shard
//! written under a temporary name and renamed, then its index.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::index::{ImageKind, IndexEntry, PackSettings, ShardIndex};
use super::{index_path, key, shard_path};

/// A tar block.
const BLOCK: u64 = 512;

/// The bytes a member of `len` bytes takes: its header and its data padded to whole blocks.
fn member_bytes(len: u64) -> u64 {
    BLOCK + len.div_ceil(BLOCK) * BLOCK
}

/// The temporary name a shard is written under, hidden, removed by the next run if left over.
fn partial_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!(".shard-{n:06}.tar.partial"))
}

/// Removes what an interrupted run left: partial shards and temporary index files.
pub fn remove_leftovers(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".shard-") && (name.ends_with(".partial") || name.contains(".idx.tmp-")) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Writes one tar member: a ustar header (mode 0644, owner 0, time 0) and the data, padded.
fn write_member(w: &mut impl Write, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    w.write_all(header.as_bytes())?;
    w.write_all(data)?;
    let pad = (member_bytes(data.len() as u64) - BLOCK - data.len() as u64) as usize;
    w.write_all(&[0u8; BLOCK as usize][..pad])
}

/// The shards of one split, written one after the other.
pub struct ShardWriter<'a> {
    dir: &'a Path,
    settings: PackSettings,
    /// The shard being written, the listing position it starts at, and the unreadable images
    /// skipped since.
    number: usize,
    first_source: u64,
    skipped: u64,
    file: Option<BufWriter<File>>,
    at: u64,
    entries: Vec<IndexEntry>,
    /// Shards finished by this writer.
    pub finished: usize,
}

impl<'a> ShardWriter<'a> {
    /// A writer whose first shard is number `number`, covering the listing from `first_source`.
    pub fn new(dir: &'a Path, settings: PackSettings, number: usize, first_source: u64) -> Self {
        ShardWriter {
            dir,
            settings,
            number,
            first_source,
            skipped: 0,
            file: None,
            at: 0,
            entries: Vec::new(),
            finished: 0,
        }
    }

    /// Whether the open shard holds no sample yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Unreadable images counted into the open shard.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Counts an unreadable image at the current position.
    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    /// Appends the sample of listing position `source`, first finishing the open shard when the
    /// sample would take it past the target size.
    pub fn add(&mut self, source: u64, label: u32, image: &[u8], kind: ImageKind) -> Result<(), String> {
        let class = label.to_string();
        let needed = member_bytes(image.len() as u64) + member_bytes(class.len() as u64);
        if !self.entries.is_empty() && self.at + needed + 2 * BLOCK > self.settings.shard_bytes {
            self.finish(source)?;
        }
        let partial = partial_path(self.dir, self.number);
        let fail = |e: std::io::Error| format!("{}: {e}", partial.display());
        if self.file.is_none() {
            self.file = Some(BufWriter::with_capacity(1 << 20, File::create(&partial).map_err(fail)?));
        }
        let Some(file) = self.file.as_mut() else {
            return Err(format!("{}: the shard is not open", partial.display()));
        };
        let k = key(source);
        write_member(file, &format!("{k}.{}", kind.extension()), image).map_err(fail)?;
        write_member(file, &format!("{k}.cls"), class.as_bytes()).map_err(fail)?;
        self.entries.push(IndexEntry {
            source,
            offset: self.at + BLOCK,
            size: image.len() as u64,
            label,
            crc: crc32fast::hash(image),
            kind,
        });
        self.at += needed;
        Ok(())
    }

    /// Finishes the open shard as covering the listing up to `end_source`: the tar's end, synced
    /// and renamed to its name, then its index.
    pub fn finish(&mut self, end_source: u64) -> Result<(), String> {
        let partial = partial_path(self.dir, self.number);
        let tar = shard_path(self.dir, self.number);
        let fail = |e: std::io::Error| format!("{}: {e}", partial.display());
        let Some(mut file) = self.file.take() else {
            return Err(format!("{}: no sample was written to the shard", partial.display()));
        };
        file.write_all(&[0u8; 2 * BLOCK as usize]).map_err(fail)?;
        self.at += 2 * BLOCK;
        let file = file.into_inner().map_err(|e| fail(e.into_error()))?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&partial, &tar).map_err(fail)?;
        let index = ShardIndex {
            settings: self.settings,
            first_source: self.first_source,
            end_source,
            skipped: self.skipped,
            tar_bytes: self.at,
            entries: std::mem::take(&mut self.entries),
        };
        let path = index_path(self.dir, self.number);
        alexir::plan::write_atomically(&path, &index.encode())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.number += 1;
        self.finished += 1;
        self.first_source = end_source;
        self.skipped = 0;
        self.at = 0;
        Ok(())
    }
}
