//! ImageNet's scale, in miniature: 100,000 tiny image files in 1,000 class folders. Listing them
//! takes seconds (printed; tests do not assert timings) and bounded memory, and reading two whole
//! epochs through the loader does not grow the memory in use.

use std::path::Path;
use std::time::Instant;

use alexrt::data::augment::Pipeline;
use alexrt::data::{epoch_order, Dataset, ImageFolder, Loader};

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

fn make(dir: &Path, classes: usize, per_class: usize) {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(4, 4, image::Rgb([90, 120, 150]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    for c in 0..classes {
        let class = dir.join("train").join(format!("n{c:08}"));
        std::fs::create_dir_all(&class).unwrap();
        for i in 0..per_class {
            std::fs::write(class.join(format!("n{c:08}_{i}.JPEG")), &png).unwrap();
        }
    }
}

#[test]
fn a_hundred_thousand_files_list_fast_and_load_in_constant_memory() {
    let dir = std::env::temp_dir().join(format!("alexrt-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    make(&dir, 1000, 100);

    let before = rss();
    let started = Instant::now();
    let pipeline = Pipeline::from_spec(None, [3, 4, 4], None).unwrap();
    let folder = ImageFolder::open(&dir, "train", None, pipeline).unwrap();
    let listing = started.elapsed();
    let listed = rss().saturating_sub(before);
    assert_eq!(folder.len(), 100_000);
    assert_eq!(folder.classes(), 1000);
    eprintln!(
        "listed 100,000 files in 1,000 classes in {:.2}s, {:.1} MB",
        listing.as_secs_f64(),
        listed as f64 / 1e6
    );
    // A file name and a class index each: far below a kilobyte per file.
    assert!(listed < 40_000_000, "listing took {listed} bytes");

    let loader = Loader { workers: 2, prefetch: 4 };
    let mut peaks = Vec::new();
    for epoch in 0..2 {
        let batches = epoch_order(folder.len(), 500, 1, epoch);
        let mut seen = 0;
        let started = Instant::now();
        loader
            .run(&folder, &batches, Some(epoch as u64), |l| {
                seen += l.batch.len();
                assert!(l.failed.is_empty());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(seen, 100_000);
        peaks.push(rss());
        eprintln!(
            "epoch {epoch}: 100,000 images in {:.2}s, resident {:.1} MB",
            started.elapsed().as_secs_f64(),
            rss() as f64 / 1e6
        );
    }
    // The second epoch holds no more than the first (a little allocator slack aside).
    assert!(peaks[1] <= peaks[0] + 8_000_000, "memory grew with the epoch: {peaks:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
