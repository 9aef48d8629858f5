//! Datasets and their loading: the built-in synthetic set, ImageNet-layout folders of images and
//! the packed shards made from them (`alexrt pack`), with the paper's preprocessing and
//! augmentation, a multi-threaded prefetching loader, and the dataset statistics (mean, RGB
//! eigen-decomposition) that the augmentation uses.

pub mod augment;
pub mod band;
pub mod decode;
pub mod folder;
pub mod loader;
pub mod shards;
pub mod sources;
pub mod stats;
pub mod synthetic;
mod window;

pub use folder::{ImageFolder, ListingReport};
pub use loader::{epoch_order, Loader};
pub use shards::ShardSplit;
pub use sources::{DataSource, Datasets};
pub use synthetic::Synthetic;

use std::path::Path;

use crate::exec::Batch;
use augment::Pipeline;

/// One prepared image (`C x H x W`, normalised) and its label.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: Vec<f32>,
    pub label: i32,
}

/// A labelled image collection, read by index.
pub trait Dataset: Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Class names, by label.
    fn class_names(&self) -> Vec<String>;
    fn classes(&self) -> usize {
        self.class_names().len()
    }
    /// The label of sample `i`, without loading it.
    fn label(&self, i: usize) -> usize;
    /// Sample `i` prepared for the network: with `augment = Some(seed)` the training
    /// augmentation drawn from `seed`, with `None` the test-time centre crop. An error describes
    /// a sample that cannot be read (the loader skips and counts it).
    fn load(&self, i: usize, augment: Option<u64>) -> Result<Sample, String>;

    /// The samples at `indices` as one batch; unreadable ones are left out and returned.
    fn batch(&self, indices: &[usize], augment: Option<u64>) -> (Batch, Vec<(usize, String)>) {
        let mut images = Vec::new();
        let mut labels = Vec::with_capacity(indices.len());
        let mut failed = Vec::new();
        for &i in indices {
            match self.load(i, sample_seed(augment, i)) {
                Ok(s) => {
                    images.extend_from_slice(&s.image);
                    labels.push(s.label);
                }
                Err(e) => failed.push((i, e)),
            }
        }
        (Batch { images, labels }, failed)
    }
}

/// A split of stored images (a folder's files, or packed shards): decoded one at a time and
/// prepared by its pipeline. Statistics and evaluation read either through it.
pub trait ImageSet: Dataset {
    /// Reads and decodes image `i` as RGB; an error is one line that names the file.
    fn decode_image(&self, i: usize) -> Result<image::RgbImage, String>;
    /// Image `i` decoded where it holds rows `rows(width, height)` (first and last): only those
    /// where the stored image allows it ([`band::decode_rows`]), else whole.
    fn decode_rows(
        &self,
        i: usize,
        rows: &dyn Fn(u32, u32) -> Option<(u32, u32)>,
    ) -> Result<band::Band, String> {
        let _ = rows;
        self.decode_image(i).map(band::Band::whole)
    }
    /// The preprocessing the images get.
    fn image_pipeline(&self) -> &Pipeline;
    /// What opening the split found besides the images.
    fn listing(&self) -> &ListingReport;
}

/// Sample `i`'s augmentation seed, drawn from the epoch's `augment` seed and the sample's index
/// (so that a sample is augmented alike whatever batch or thread takes it).
pub fn sample_seed(augment: Option<u64>, i: usize) -> Option<u64> {
    augment.map(|s| crate::init::Rng::for_stream(s, &[&(i as u64).to_le_bytes()]).next_u64())
}

/// [`Dataset::load`] for an [`ImageSet`]: image `i` decoded and prepared by its pipeline.
fn image_sample<S: ImageSet + ?Sized>(set: &S, i: usize, augment: Option<u64>) -> Result<Sample, String> {
    let img = set.decode_image(i)?;
    Ok(Sample { image: set.image_pipeline().prepare(&img, augment), label: set.label(i) as i32 })
}

/// [`Dataset::batch`] for an [`ImageSet`]: each image decoded and prepared straight into its slot
/// of the batch (no per-image buffer, nothing zeroed first), with the augmentation seed [`Dataset::batch`] gives it.
fn image_batch<S: ImageSet + ?Sized>(
    set: &S,
    indices: &[usize],
    augment: Option<u64>,
) -> (Batch, Vec<(usize, String)>) {
    let pipeline = set.image_pipeline();
    let len = pipeline.input_len();
    let mut images = Vec::with_capacity(indices.len() * len);
    let mut labels = Vec::with_capacity(indices.len());
    let mut failed = Vec::new();
    for &i in indices {
        let seed = sample_seed(augment, i);
        match set.decode_rows(i, &|w, h| pipeline.rows_read(w, h, seed)) {
            Ok(band) => {
                pipeline.prepare_band(&band, seed, &mut images);
                labels.push(set.label(i) as i32);
            }
            Err(e) => failed.push((i, e)),
        }
    }
    (Batch { images, labels }, failed)
}

/// Opens split `split` of `dir`, which is either an ImageNet-layout folder or a folder of shards
/// that `alexrt pack` wrote (told apart by [`shards::is_shard_folder`], or by the split's first
/// shard index where `classes.txt` is missing, so that its absence is the error). With
/// `classes`, labels follow that list (see [`ImageFolder::open`] and [`ShardSplit::open`]).
pub fn open_split(
    dir: &Path,
    split: &str,
    classes: Option<&[String]>,
    pipeline: Pipeline,
) -> Result<Box<dyn ImageSet>, String> {
    if shards::is_shard_folder(dir) || shards::index_path(&dir.join(split), 0).is_file() {
        Ok(Box::new(ShardSplit::open(dir, split, classes, pipeline)?))
    } else {
        Ok(Box::new(ImageFolder::open(dir, split, classes, pipeline)?))
    }
}
