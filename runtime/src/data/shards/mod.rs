//! Packed datasets: an ImageNet-layout folder packed once (`alexrt pack`) into WebDataset-layout
//! shards, read back by index.
//!
//! The layout, under the shard folder `SHARDS`:
//! - `SHARDS/classes.txt`: the class names, one a line, in label order;
//! - `SHARDS/<split>/shard-NNNNNN.tar` (split `train` or `val`, shards numbered from 0): plain
//!   POSIX (ustar) tar files, a sample being two members that share a key, `KEY.jpg` (or
//!   `KEY.png`: an image kept as it was) and `KEY.cls`, its class index as decimal text. The key
//!   is the image's position in the folder's sorted listing, eight digits or more;
//! - `SHARDS/<split>/shard-NNNNNN.idx`: the shard's index ([`index`]), so that any sample is
//!   read with one positioned read and no scan. A shard counts as written once its index is
//!   there: both files are written under temporary names and renamed, the tar first.
//!
//! Packing ([`pack`]) resizes an image whose short side is longer than the target and stores it
//! as JPEG; every other image keeps its bytes. Reading ([`read`]) is a [`super::Dataset`] like
//! the folder's, with the same labels and, when nothing was resized, the same pixels. WebDataset
//! shards that other tools wrote (any `*.tar` names, no index) are indexed at first use
//! ([`scan`]).

pub mod index;
pub mod pack;
pub mod read;
pub mod scan;
mod writer;

use std::path::{Path, PathBuf};

pub use index::{IndexEntry, ShardIndex};
pub use pack::{pack, PackOptions, PackProgress, SplitReport};
pub use read::ShardSplit;

/// The class list of a shard folder.
pub const CLASSES_FILE: &str = "classes.txt";

/// The splits a shard folder may hold.
pub const SPLITS: [&str; 2] = ["train", "val"];

/// The tar file of shard `n` of a split folder.
pub fn shard_path(split_dir: &Path, n: usize) -> PathBuf {
    split_dir.join(format!("shard-{n:06}.tar"))
}

/// The index of shard `n` of a split folder.
pub fn index_path(split_dir: &Path, n: usize) -> PathBuf {
    split_dir.join(format!("shard-{n:06}.idx"))
}

/// Whether `dir` is a shard folder: in `train/` or `val/`, a first shard's index (`alexrt
/// pack`'s), or `.tar` files and no folder (WebDataset shards another tool wrote). An
/// ImageNet-layout folder has class folders there (and may keep the class tars it came in).
pub fn is_shard_folder(dir: &Path) -> bool {
    SPLITS.iter().any(|s| {
        let split = dir.join(s);
        if index_path(&split, 0).is_file() {
            return true;
        }
        let Ok(entries) = std::fs::read_dir(&split) else { return false };
        let paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.iter().any(|p| p.extension().is_some_and(|x| x == "tar")) && !paths.iter().any(|p| p.is_dir())
    })
}

/// The key of the sample packed from image `source` of a folder's listing.
pub fn key(source: u64) -> String {
    format!("{source:08}")
}

/// Reads `SHARDS/classes.txt`.
pub fn read_classes(dir: &Path) -> Result<Vec<String>, String> {
    let path = dir.join(CLASSES_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!("{}: cannot read the class list ({e}); pack the dataset with `alexrt pack`", path.display())
    })?;
    let classes: Vec<String> = text.lines().map(str::to_string).collect();
    if classes.is_empty() || classes.iter().any(|c| c.is_empty()) {
        return Err(format!(
            "{}: expected one class name a line and no empty line; pack the dataset again with `alexrt pack`",
            path.display()
        ));
    }
    Ok(classes)
}
