//! ImageNet-layout folders: `DIR/train/<class>/<image>` and `DIR/val/<class>/<image>`. Listing
//! keeps one short name per file (about 60 MB for ImageNet's 1.28 million), as the file system
//! spells it (a name need not be UTF-8), and reads class folders in parallel; stray files and
//! empty class folders are counted and reported.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::augment::Pipeline;
use super::{Dataset, ImageSet, Sample};
use crate::exec::Batch;

/// File extensions taken as images.
const IMAGE_EXTENSIONS: &[&str] = &["jpeg", "jpg", "png"];

/// What listing a split found besides the images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingReport {
    pub images: usize,
    /// Files that are not images (by extension), and entries that are not class folders.
    pub stray_files: usize,
    pub empty_classes: Vec<String>,
    /// Class folders of this split that the training classes do not have (skipped).
    pub unknown_classes: Vec<String>,
    /// Class folders that could not be listed, with the reason (their images are skipped).
    pub unreadable_classes: Vec<String>,
    /// For packed shards: how many, and the unreadable images that packing skipped.
    pub shards: usize,
    pub skipped_when_packed: usize,
}

/// One split of an image folder.
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    /// (class, file name) of each image, sorted by class then name.
    files: Vec<(u32, Box<OsStr>)>,
    pub report: ListingReport,
    pipeline: Pipeline,
}

impl ImageFolder {
    /// Lists `dir/split`. With `classes`, labels follow that list (the training split's) and
    /// other class folders are skipped; without, the split's own sorted folders are the classes.
    pub fn open(
        dir: &Path,
        split: &str,
        classes: Option<&[String]>,
        pipeline: Pipeline,
    ) -> Result<Self, String> {
        let root = dir.join(split);
        let entries = std::fs::read_dir(&root).map_err(|e| {
            format!(
                "{}: cannot list the {split} images ({e}); expected DIR/{split}/<class>/<image>",
                root.display()
            )
        })?;
        let mut report = ListingReport::default();
        let mut folders = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", root.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                folders.push(name);
            } else {
                report.stray_files += 1;
            }
        }
        folders.sort();
        let classes: Vec<String> = match classes {
            Some(c) => c.to_vec(),
            None => folders.clone(),
        };
        let index: std::collections::HashMap<&str, u32> =
            classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
        report.unknown_classes =
            folders.iter().filter(|f| !index.contains_key(f.as_str())).cloned().collect();
        #[allow(clippy::type_complexity)] // (class, folder, file names, strays, error), once
        let listed: Vec<(u32, String, Vec<Box<OsStr>>, usize, Option<String>)> = folders
            .par_iter()
            .filter_map(|f| index.get(f.as_str()).map(|&c| (c, f)))
            .map(|(c, f)| {
                let mut names = Vec::new();
                let mut stray = 0;
                let mut unreadable = None;
                match std::fs::read_dir(root.join(f)) {
                    Err(e) => unreadable = Some(format!("{f} ({e})")),
                    Ok(rd) => {
                        for e in rd.flatten() {
                            let name = e.file_name();
                            let is_image = Path::new(&name)
                                .extension()
                                .map(|x| {
                                    IMAGE_EXTENSIONS
                                        .contains(&x.to_string_lossy().to_ascii_lowercase().as_str())
                                })
                                .unwrap_or(false);
                            if is_image && e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                                names.push(name.into_boxed_os_str());
                            } else {
                                stray += 1;
                            }
                        }
                    }
                }
                names.sort();
                (c, f.clone(), names, stray, unreadable)
            })
            .collect();
        let mut files = Vec::with_capacity(listed.iter().map(|l| l.2.len()).sum());
        let mut listed = listed;
        listed.sort_by_key(|l| l.0);
        for (c, folder, names, stray, unreadable) in listed {
            report.stray_files += stray;
            if let Some(why) = unreadable {
                report.unreadable_classes.push(why);
            } else if names.is_empty() {
                report.empty_classes.push(folder);
            }
            files.extend(names.into_iter().map(|n| (c, n)));
        }
        report.images = files.len();
        if files.is_empty() {
            return Err(format!(
                "{}: no images found; expected DIR/{split}/<class>/<image>.JPEG (jpg, jpeg or png)",
                root.display()
            ));
        }
        Ok(ImageFolder { root, classes, files, report, pipeline })
    }

    /// The path of sample `i`.
    pub fn path(&self, i: usize) -> PathBuf {
        let (c, name) = &self.files[i];
        self.root.join(&self.classes[*c as usize]).join(&**name)
    }

    /// Reads and decodes image `i` as RGB ([`super::decode`]); an error is one line that names
    /// the file.
    pub fn decode(&self, i: usize) -> Result<image::RgbImage, String> {
        let path = self.path(i);
        let fail = |e: &dyn std::fmt::Display| format!("{}: {}", path.display(), one_line(e));
        let bytes = std::fs::read(&path).map_err(|e| fail(&e))?;
        super::decode::decode(&bytes).map_err(|e| fail(&e))
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// `e`'s text on one line: some decoders end theirs with a newline (zune-jpeg's I/O errors),
/// which left an empty line after each skipped image's message.
pub(super) fn one_line(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }

    fn label(&self, i: usize) -> usize {
        self.files[i].0 as usize
    }

    fn load(&self, i: usize, augment: Option<u64>) -> Result<Sample, String> {
        super::image_sample(self, i, augment)
    }

    fn batch(&self, indices: &[usize], augment: Option<u64>) -> (Batch, Vec<(usize, String)>) {
        super::image_batch(self, indices, augment)
    }
}

impl ImageSet for ImageFolder {
    fn decode_image(&self, i: usize) -> Result<image::RgbImage, String> {
        self.decode(i)
    }

    fn image_pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn listing(&self) -> &ListingReport {
        &self.report
    }
}
