//! Packed shards (`alexrt pack`) as a person would use them: a folder packed into tar shards that
//! the system's `tar` lists, an index that finds every sample, the same epochs and the same
//! training run as the folder when nothing was resized, the same bytes on any number of threads,
//! an interrupted packing continued by a rerun, and damaged shards and indexes refused with the
//! file and the fix named.

use std::path::Path;
use std::process::Command;

use alexrt::data::augment::Pipeline;
use alexrt::data::shards::pack::read_index;
use alexrt::data::shards::{index_path, shard_path};
use alexrt::data::{epoch_order, sample_seed, Dataset, ImageFolder, ImageSet, ShardSplit};

#[path = "common/cli.rs"]
mod cli;
use cli::{alexrt, ok, root, tiny_plan, Scratch};

/// Runs `args`, which must fail with exit status 2, no panic, and every one of `fragments` in
/// its message.
fn refused(args: &[&str], fragments: &[&str]) {
    let o = alexrt(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    for f in fragments {
        assert!(err.contains(f), "{args:?}: expected `{f}` in {err}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An ImageNet-layout folder: per split `n` images over 3 classes (5 in `train`), of the sizes
/// `sizes` in turn, every fourth a PNG, the rest JPEGs; each a class-coloured gradient.
fn make_folder(dir: &Path, train: usize, val: usize, sizes: &[(u32, u32)]) {
    for (split, n) in [("train", train), ("val", val)] {
        for i in 0..n {
            let label = (i * 7 + 3) % 5;
            let (w, h) = sizes[i % sizes.len()];
            let class = dir.join(split).join(format!("n{label:08}"));
            std::fs::create_dir_all(&class).unwrap();
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 5 + 40 * label as u32) as u8, (y * 3 + i as u32) as u8, ((x + y) * 2) as u8])
            });
            let ext = if i % 4 == 3 { "png" } else { "JPEG" };
            img.save(class.join(format!("{split}_{i:04}.{ext}"))).unwrap();
        }
    }
}

/// The bytes of every file under `dir`, by relative path, sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|f| f.0.as_str()).collect()
}

/// The sizes of the packing test: short sides below, at and above 64.
const SIZES: [(u32, u32); 5] = [(48, 40), (40, 64), (64, 64), (100, 80), (72, 130)];

#[test]
fn packing_writes_tar_shards_that_tar_lists_and_an_index_that_finds_every_sample() {
    let dir = Scratch::new("shards-pack");
    let (data, out) = (dir.0.join("data"), dir.0.join("shards"));
    make_folder(&data, 30, 10, &SIZES);
    std::fs::write(data.join("train/n00000002/broken.JPEG"), b"\xff\xd8\xff not a jpeg").unwrap();
    std::fs::write(data.join("train/n00000001/notes.txt"), b"not an image").unwrap();
    std::fs::create_dir_all(data.join("val/n00000099")).unwrap();
    std::fs::copy(data.join("val/n00000003/val_0000.JPEG"), data.join("val/n00000099/a.JPEG")).unwrap();
    let pack = |out: &Path, workers: &str| {
        ok(&alexrt(
            &["pack", "--data", s(&data), "--out", s(out), "--short-side", "64"]
                .into_iter()
                .chain(["--shard-mib", "0.02", "--workers", workers])
                .collect::<Vec<_>>(),
        ))
    };
    let (summary, err) = pack(&out, "1");
    assert!(err.contains("skipped an unreadable image") && err.contains("broken.JPEG"), "{err}");
    assert!(
        summary.contains("train: 30 of 31 images in") && summary.contains("1 unreadable image skipped"),
        "{summary}"
    );
    assert!(summary.contains("24 resized to a short side of 64"), "{summary}");
    assert!(summary.contains("  1 stray file (not images, or not in a class folder) skipped"), "{summary}");
    assert!(summary.contains("class folders that train/ lacks, skipped: n00000099"), "{summary}");
    let classes = std::fs::read_to_string(out.join("classes.txt")).unwrap();
    assert_eq!(classes, "n00000000\nn00000001\nn00000002\nn00000003\nn00000004\n");

    let listing = Pipeline::from_spec(None, [3, 31, 31], None).unwrap();
    let folder = ImageFolder::open(&data, "train", None, listing.clone()).unwrap();
    let split = out.join("train");
    let shards = (0..).take_while(|&n| shard_path(&split, n).exists()).count();
    assert!(shards >= 3, "20 KiB shards hold a few images each: {shards} shards");
    let have_tar = Command::new("tar").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have_tar {
        println!("SKIPPED: listing the shards with the system's tar because `tar --version` did not run");
    }
    let mut sources = Vec::new();
    for n in 0..shards {
        let index = read_index(&index_path(&split, n)).unwrap();
        let tar_bytes = std::fs::read(shard_path(&split, n)).unwrap();
        assert_eq!(index.tar_bytes, tar_bytes.len() as u64);
        let mut expected = Vec::new();
        for e in &index.entries {
            let original = std::fs::read(folder.path(e.source as usize)).unwrap();
            let stored = &tar_bytes[e.offset as usize..(e.offset + e.size) as usize];
            let img = image::load_from_memory(stored).unwrap();
            let (w, h) = (img.width(), img.height());
            let ext = if stored == original.as_slice() {
                assert_eq!(w.min(h), 64, "only an image that needed no resizing keeps its bytes");
                if image::guess_format(stored).unwrap() == image::ImageFormat::Png {
                    "png"
                } else {
                    "jpg"
                }
            } else {
                assert_eq!(
                    (w, h),
                    (64, 64),
                    "a resized image keeps the centre square of the short side asked for"
                );
                assert_eq!(image::guess_format(stored).unwrap(), image::ImageFormat::Jpeg);
                // The square the pipeline takes, cut at the same place (JPEG's loss aside).
                let square = Pipeline::from_spec(None, [3, 64, 64], None)
                    .unwrap()
                    .rescale(&image::load_from_memory(&original).unwrap().to_rgb8());
                // (The gradients wrap from 255 to 0, where JPEG rings: a mean, not a maximum.)
                let off = |a: &image::RgbImage| {
                    let diff: u64 =
                        a.as_raw().iter().zip(square.as_raw()).map(|(a, b)| u64::from(a.abs_diff(*b))).sum();
                    diff as f64 / a.as_raw().len() as f64
                };
                let stored_off = off(&alexrt::data::decode::decode(stored).unwrap());
                assert_eq!(stored_off, off(&img.to_rgb8()), "training's decoder and the image crate's agree");
                assert!(
                    stored_off < 6.0,
                    "the stored square is off the pipeline's by {stored_off:.2} levels on average"
                );
                "jpg"
            };
            assert_eq!(e.label as usize, folder.label(e.source as usize));
            let key = format!("{:08}", e.source);
            expected.push((format!("{key}.{ext}"), e.size));
            expected.push((format!("{key}.cls"), e.label.to_string().len() as u64));
            sources.push(e.source as usize);
        }
        if have_tar {
            let listed = Command::new("tar").arg("-tvf").arg(shard_path(&split, n)).output().unwrap();
            assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
            let got: Vec<(String, u64)> = String::from_utf8_lossy(&listed.stdout)
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f[f.len() - 1].to_string(), f[2].parse().unwrap())
                })
                .collect();
            assert_eq!(got, expected, "tar -tvf {}", shard_path(&split, n).display());
            let x = dir.0.join(format!("x{n}"));
            std::fs::create_dir_all(&x).unwrap();
            let status = Command::new("tar").arg("-xf").arg(shard_path(&split, n)).arg("-C").arg(&x).status();
            assert!(status.unwrap().success());
            for e in &index.entries {
                let cls = std::fs::read_to_string(x.join(format!("{:08}.cls", e.source))).unwrap();
                assert_eq!(cls, e.label.to_string());
            }
        }
    }
    let broken = (0..folder.len()).find(|&i| folder.path(i).ends_with("broken.JPEG")).unwrap();
    let want: Vec<usize> = (0..folder.len()).filter(|&i| i != broken).collect();
    assert_eq!(sources, want, "every readable image once, in listing order");

    // The same bytes on three threads, and the reader sees what the indexes say.
    let again = dir.0.join("again");
    pack(&again, "3");
    assert_eq!(tree(&again), tree(&out), "shards packed on 1 and 3 threads");
    let read = ShardSplit::open(&out, "train", None, listing.clone()).unwrap();
    assert_eq!(read.len(), 30);
    assert_eq!(read.class_names(), folder.class_names());
    let val = ShardSplit::open(&out, "val", Some(&folder.class_names()), listing).unwrap();
    assert_eq!(val.len(), 10);
    assert_eq!(val.listing().shards, (0..).take_while(|&n| shard_path(&out.join("val"), n).exists()).count());
}

#[test]
fn a_shard_epoch_is_the_folder_epoch_when_nothing_was_resized() {
    let dir = Scratch::new("shards-epoch");
    let (data, out) = (dir.0.join("data"), dir.0.join("shards"));
    make_folder(&data, 40, 8, &[(48, 36), (36, 44), (36, 36)]);
    ok(&alexrt(&["pack", "--data", s(&data), "--out", s(&out), "--short-side", "36", "--shard-mib", "0.01"]));
    let pipeline = Pipeline::from_spec(None, [3, 31, 31], None).unwrap();
    let folder = ImageFolder::open(&data, "train", None, pipeline.clone()).unwrap();
    let shards = ShardSplit::open(&out, "train", None, pipeline).unwrap();
    assert_eq!(shards.len(), folder.len());
    assert!(shards.listing().shards > 1);
    for i in 0..folder.len() {
        assert_eq!(
            shards.image_bytes(i).unwrap(),
            std::fs::read(folder.path(i)).unwrap(),
            "sample {i}'s bytes"
        );
        assert_eq!(shards.label(i), folder.label(i));
    }
    for epoch in 0..2 {
        for batch in epoch_order(folder.len(), 8, 11, epoch) {
            let (a, fa) = folder.batch(&batch, Some(epoch as u64));
            let (b, fb) = shards.batch(&batch, Some(epoch as u64));
            assert!(fa.is_empty() && fb.is_empty());
            assert_eq!(a.labels, b.labels);
            assert!(a.images == b.images, "epoch {epoch}, batch {batch:?}: the prepared images differ");
        }
    }
}

#[test]
fn a_packed_image_decoded_only_where_the_crop_reads_gives_the_whole_decodes_input() {
    let dir = Scratch::new("shards-band");
    let (data, out) = (dir.0.join("data"), dir.0.join("shards"));
    make_folder(&data, 24, 0, &[(100, 80), (72, 130), (90, 90)]);
    ok(&alexrt(&["pack", "--data", s(&data), "--out", s(&out), "--short-side", "64"]));
    // The paper's pipeline at a packed short side of 64, with a random 40 of the centre 64 (a
    // crop that leaves MCU rows of 16 out).
    let pipeline = Pipeline {
        resize_short_side: 64,
        center_crop: 64,
        crop: 40,
        random_crop: true,
        flip: true,
        lighting: None,
        mean: [120.0, 110.0, 100.0],
        std: Some([60.0, 61.0, 62.0]),
    };
    let shards = ShardSplit::open(&out, "train", None, pipeline.clone()).unwrap();
    let mut banded = 0;
    for seed in 0..4u64 {
        let indices: Vec<usize> = (0..shards.len()).collect();
        let (batch, failed) = shards.batch(&indices, Some(seed));
        assert!(failed.is_empty());
        let len = pipeline.input_len();
        for (slot, &i) in indices.iter().enumerate() {
            // The seed the batch gave sample i, so the crop (and the band) is the batch's.
            let sample = sample_seed(Some(seed), i);
            let img = shards.decode_image(i).unwrap();
            let rows = pipeline.rows_read(img.width(), img.height(), sample).unwrap();
            let band = shards.decode_rows(i, &|_, _| Some(rows)).unwrap();
            banded += usize::from(band.image.height() < img.height());
            // The batch's slot, prepared here from the whole decode.
            let whole = pipeline.prepare(&img, sample);
            assert!(whole == batch.images[slot * len..(slot + 1) * len], "seed {seed}, sample {i}");
        }
    }
    assert!(banded > 48, "most crops decode a band: {banded} of 96");
}

/// A run's epochs as `metrics.jsonl` holds them, less the times.
fn epochs(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{} {} {} {}", v["epoch"], v["lr"], v["train"], v["val"])
        })
        .collect()
}

/// The loss line a run printed at the end of each epoch (`epoch 1/2 step 5/5: loss ... | top-1
/// ...`), without the images per second. (Lines within an epoch come every few seconds.)
fn loss_lines(err: &str) -> Vec<String> {
    err.lines()
        .filter(|l| {
            let step = l.split(" step ").nth(1).and_then(|t| t.split(':').next()).unwrap_or("");
            l.contains(": loss ") && step.split_once('/').is_some_and(|(a, b)| a == b)
        })
        .map(|l| l.split(" | ").take(2).collect::<Vec<_>>().join(" | "))
        .collect()
}

#[test]
fn training_from_shards_equals_training_from_the_folder_step_for_step() {
    let dir = Scratch::new("shards-train");
    let (data, out) = (dir.0.join("data"), dir.0.join("shards"));
    make_folder(&data, 160, 40, &[(48, 36), (36, 44), (36, 36), (36, 50)]);
    // tiny.ron has 10 classes.
    for split in ["train", "val"] {
        for c in 5..10 {
            let class = data.join(split).join(format!("n{c:08}"));
            std::fs::create_dir_all(&class).unwrap();
            std::fs::copy(
                data.join(split).join(format!("n00000003/{split}_0000.JPEG")),
                class.join("x.JPEG"),
            )
            .unwrap();
        }
    }
    ok(&alexrt(&["pack", "--data", s(&data), "--out", s(&out), "--short-side", "36"]));
    let plan = tiny_plan(&dir.0);
    let run = |from: &Path, name: &str| {
        let run = dir.0.join(name);
        let (_, err) =
            ok(&alexrt(&["train", s(&plan), "--data", s(from), "--epochs", "2", "--out", s(&run)]));
        (run, err)
    };
    let (folder_run, folder_err) = run(&data, "from-folder");
    let (shard_run, shard_err) = run(&out, "from-shards");
    assert!(
        shard_err.contains("train: 165 images in 10 classes, from 1 shard")
            && !shard_err.contains("1 shards"),
        "{shard_err}"
    );
    assert_eq!(epochs(&shard_run), epochs(&folder_run), "the epochs' losses and accuracies");
    assert_eq!(epochs(&shard_run).len(), 2);
    assert_eq!(loss_lines(&shard_err), loss_lines(&folder_err));
    assert!(!loss_lines(&folder_err).is_empty(), "{folder_err}");
    let weights = |run: &Path| std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let crc = |b: Vec<u8>| {
        let f = safetensors::SafeTensors::deserialize(&b).unwrap();
        let mut c: Vec<(String, u32)> =
            f.tensors().into_iter().map(|(n, t)| (n, crc32fast::hash(t.data()))).collect();
        c.sort();
        c
    };
    assert_eq!(crc(weights(&shard_run)), crc(weights(&folder_run)), "the trained weights, bit for bit");

    // Killed mid-epoch (before step 5 of 10, after the step-3 checkpoint) and resumed from the
    // shards: the folder's uninterrupted run, bit for bit.
    let cut = dir.0.join("cut");
    let cut_train = |extra: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"))
            .args(["train", s(&plan), "--data", s(&out), "--epochs", "2", "--checkpoint-every", "3"])
            .args(["--out", s(&cut)])
            .args(extra)
            .env_remove("ALEXRT_FAULT")
            .envs(env.iter().copied())
            .current_dir(root())
            .output()
            .unwrap()
    };
    let killed = cut_train(&[], &[("ALEXRT_FAULT", "0:5:exit")]);
    assert_eq!(killed.status.code(), Some(9), "{}", String::from_utf8_lossy(&killed.stderr));
    let (_, err) = ok(&cut_train(&["--resume"], &[]));
    assert!(err.contains("at epoch 1, step 3"), "{err}");
    assert_eq!(epochs(&cut), epochs(&folder_run), "resumed from shards against the folder's run");
    assert_eq!(crc(weights(&cut)), crc(weights(&folder_run)), "resumed from shards: the weights");

    // Statistics of the shards are the folder's, and eval reads shards too.
    ok(&alexrt(&["stats", "--data", s(&data)]));
    ok(&alexrt(&["stats", "--data", s(&out)]));
    let stats = |d: &Path| std::fs::read_to_string(d.join("alexrt-stats.json")).unwrap();
    assert_eq!(stats(&out), stats(&data));
    let ckpt = shard_run.join("checkpoint.safetensors");
    let (folder_eval, _) =
        ok(&alexrt(&["eval", s(&plan), "--weights", s(&ckpt), "--data", s(&data), "--center-only"]));
    let (shard_eval, _) =
        ok(&alexrt(&["eval", s(&plan), "--weights", s(&ckpt), "--data", s(&out), "--center-only"]));
    assert_eq!(shard_eval.replace(s(&out), "D"), folder_eval.replace(s(&data), "D"));
    let (bench, _) = ok(&alexrt(&["bench-data", "--data", s(&out), "--plan", s(&plan), "--images", "64"]));
    assert!(bench.contains("64 images decoded and augmented"), "{bench}");
}

#[test]
fn an_interrupted_packing_is_continued_by_a_rerun_to_the_same_bytes() {
    let dir = Scratch::new("shards-rerun");
    let (data, whole, cut) = (dir.0.join("data"), dir.0.join("whole"), dir.0.join("cut"));
    make_folder(&data, 40, 12, &SIZES);
    let pack = |out: &Path, short: &str| {
        alexrt(&["pack", "--data", s(&data), "--out", s(out), "--short-side", short, "--shard-mib", "0.02"])
    };
    ok(&pack(&whole, "64"));
    ok(&pack(&cut, "64"));
    let split = cut.join("train");
    let shards = (0..).take_while(|&n| shard_path(&split, n).exists()).count();
    assert!(shards >= 4, "{shards} shards");
    // As a kill leaves it: the last two shards gone, the one before them renamed but without
    // its index, a partial shard after it, and no val shards yet.
    for n in shards - 2..shards {
        std::fs::remove_file(shard_path(&split, n)).unwrap();
        std::fs::remove_file(index_path(&split, n)).unwrap();
    }
    std::fs::remove_file(index_path(&split, shards - 3)).unwrap();
    std::fs::write(split.join(format!(".shard-{:06}.tar.partial", shards - 2)), b"half a shard").unwrap();
    std::fs::remove_dir_all(cut.join("val")).unwrap();
    // Reading the training split says that packing stopped before its end.
    refused(&["stats", "--data", s(&cut)], &["packing stopped early", "run `alexrt pack` again"]);
    // Other options are refused, then the same ones finish it.
    let o = pack(&cut, "32");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("was packed with --short-side 64 --jpeg-quality 90 --shard-mib 0.0200"), "{err}");
    let (summary, _) = ok(&pack(&cut, "64"));
    assert!(summary.contains(&format!("({} kept from an earlier run)", shards - 3)), "{summary}");
    assert_eq!(tree(&cut), tree(&whole), "the continued packing against the uninterrupted one");
    assert!(!names(&tree(&cut)).iter().any(|n| n.contains("partial")));
    // A rerun of a finished packing keeps everything.
    let (summary, _) = ok(&pack(&cut, "64"));
    assert!(summary.contains(&format!("({shards} kept from an earlier run)")), "{summary}");
    assert_eq!(tree(&cut), tree(&whole));
}

#[test]
fn a_damaged_shard_or_index_is_refused_naming_the_file_and_the_fix() {
    let dir = Scratch::new("shards-damaged");
    let (data, out) = (dir.0.join("data"), dir.0.join("shards"));
    make_folder(&data, 30, 10, &[(48, 40)]);
    ok(&alexrt(&["pack", "--data", s(&data), "--out", s(&out), "--shard-mib", "0.02"]));
    let plan = tiny_plan(&dir.0);
    let train = |d: &Path| {
        vec![
            "train".to_string(),
            s(&plan).into(),
            "--data".into(),
            s(d).into(),
            "--epochs".into(),
            "1".into(),
        ]
    };
    let split = out.join("train");
    let (tar, idx) = (shard_path(&split, 1), index_path(&split, 1));
    let (tar_bytes, idx_bytes) = (std::fs::read(&tar).unwrap(), std::fs::read(&idx).unwrap());
    let args = train(&out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // A shard cut short.
    std::fs::write(&tar, &tar_bytes[..tar_bytes.len() - 700]).unwrap();
    refused(&args, &[s(&tar), "cut short", "alexrt pack"]);
    // An index with a changed byte.
    std::fs::write(&tar, &tar_bytes).unwrap();
    let mut bad = idx_bytes.clone();
    bad[40] ^= 1;
    std::fs::write(&idx, &bad).unwrap();
    refused(&args, &[s(&idx), "checksum", "alexrt pack"]);
    // An index cut short, and one that is not an index.
    std::fs::write(&idx, &idx_bytes[..30]).unwrap();
    refused(&args, &[s(&idx), "cut short", "alexrt pack"]);
    std::fs::write(&idx, b"hello").unwrap();
    refused(&args, &[s(&idx), "not a shard index"]);
    // A changed byte in an image: that sample is refused by its checksum, naming the shard.
    std::fs::write(&idx, &idx_bytes).unwrap();
    let index = read_index(&idx).unwrap();
    let mut bad = tar_bytes.clone();
    bad[index.entries[0].offset as usize + 100] ^= 0x20;
    std::fs::write(&tar, &bad).unwrap();
    let pipeline = Pipeline::from_spec(None, [3, 31, 31], None).unwrap();
    let read = ShardSplit::open(&out, "train", None, pipeline).unwrap();
    let i = (0..read.len()).find(|&i| read.entry(i).source == index.entries[0].source).unwrap();
    let err = read.load(i, None).unwrap_err();
    assert!(
        err.contains(s(&tar)) && err.contains("does not match its checksum") && err.contains("alexrt pack"),
        "{err}"
    );
    let other = (0..read.len()).find(|&j| j != i && read.shard(j) == tar.as_path()).unwrap();
    assert!(read.load(other, None).is_ok(), "the shard's other samples are read");
    // bench-data counts the sample it could not read and says why.
    let (bench, err) = ok(&alexrt(&["bench-data", "--data", s(&out), "--plan", s(&plan), "--images", "30"]));
    assert!(bench.contains("29 images decoded") && bench.contains("(1 unreadable image skipped)"), "{bench}");
    // In JSON as "unreadable": benches/decode_report.py reads a "skipped" key as a tool that did not run.
    let args = ["bench-data", "--data", s(&out), "--plan", s(&plan), "--images", "30", "--json"];
    let (json, _) = ok(&alexrt(&args));
    assert!(json.contains("\"unreadable\":1") && !json.contains("skipped"), "{json}");
    assert!(
        err.contains("skipped an unreadable image") && err.contains("does not match its checksum"),
        "{err}"
    );
    // No class list, or an empty one.
    std::fs::write(&tar, &tar_bytes).unwrap();
    std::fs::remove_file(out.join("classes.txt")).unwrap();
    refused(&["stats", "--data", s(&out)], &["classes.txt", "alexrt pack"]);
    std::fs::write(out.join("classes.txt"), "").unwrap();
    refused(&["stats", "--data", s(&out)], &["classes.txt", "alexrt pack"]);
    // A shard folder given to pack.
    std::fs::write(out.join("classes.txt"), "a\n").unwrap();
    refused(&["pack", "--data", s(&out), "--out", s(&dir.0.join("x"))], &["shard folder already"]);
    // Shards written into the folder being packed (itself, or its train/ or val/, by any path),
    // refused before anything is written there.
    let before = tree(&data);
    for into in [data.clone(), data.join("train/new"), data.join("val/../val/x"), data.join("../data/")] {
        refused(&["pack", "--data", s(&data), "--out", s(&into)], &["folder being packed", "--out"]);
    }
    assert!(tree(&data) == before, "the folder being packed is left as it was");
    // Zero of a count is refused naming the flag.
    refused(
        &["bench-data", "--data", s(&out), "--plan", s(&plan), "--images", "0"],
        &["--images", "1 or more"],
    );
    refused(&["pack", "--data", s(&data), "--out", s(&dir.0.join("y")), "--workers", "0"], &["--workers"]);
}

#[test]
fn a_packing_killed_midway_leaves_only_whole_shards_and_a_rerun_finishes_it() {
    let dir = Scratch::new("shards-kill");
    let (data, whole, cut) = (dir.0.join("data"), dir.0.join("whole"), dir.0.join("cut"));
    // Enough work (each image decoded, resized and encoded) that the kill lands midway.
    make_folder(&data, 600, 0, &[(320, 240), (240, 300)]);
    let args = |out: &Path| {
        [
            "pack",
            "--data",
            s(&data),
            "--out",
            s(out),
            "--short-side",
            "64",
            "--shard-mib",
            "0.05",
            "--workers",
            "1",
        ]
        .map(String::from)
    };
    ok(&alexrt(&args(&whole).each_ref().map(String::as_str)));
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"))
        .args(args(&cut))
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let split = cut.join("train");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !index_path(&split, 1).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(child.try_wait().unwrap().is_none(), "the packing ended before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();
    // Every shard with an index is whole; a shard without one is at most a hidden partial file
    // or a renamed whole shard whose index was not yet written.
    let files = tree(&split);
    let written = (0..).take_while(|&n| index_path(&split, n).exists()).count();
    assert!(written >= 2 && !shard_path(&split, written + 1).exists(), "{:?}", names(&files));
    for n in 0..written {
        let index = read_index(&index_path(&split, n)).unwrap();
        assert_eq!(std::fs::metadata(shard_path(&split, n)).unwrap().len(), index.tar_bytes);
    }
    refused(&["stats", "--data", s(&cut)], &["packing stopped early"]);
    let (summary, _) = ok(&alexrt(&args(&cut).each_ref().map(String::as_str)));
    assert!(summary.contains(&format!("({written} kept from an earlier run)")), "{summary}");
    assert_eq!(tree(&cut), tree(&whole), "the finished packing against the uninterrupted one");
}

#[test]
fn webdataset_shards_another_tool_wrote_are_indexed_at_first_use_and_read() {
    if !Command::new("tar").arg("--version").output().is_ok_and(|o| o.status.success()) {
        println!(
            "SKIPPED: WebDataset shards written by the system's tar because `tar --version` did not run"
        );
        return;
    }
    let dir = Scratch::new("shards-foreign");
    let (src, data) = (dir.0.join("src"), dir.0.join("wds"));
    std::fs::create_dir_all(&src).unwrap();
    // Samples as other tools write them: KEY.jpg, .jpeg or .png with KEY.cls (and KEY.json,
    // ignored); and an image without a class.
    let exts = ["jpg", "jpeg", "png"];
    let mut want = Vec::new();
    for i in 0..12u32 {
        let img = image::RgbImage::from_fn(20 + i, 16, |x, y| {
            image::Rgb([(x * 9) as u8, (y * 13) as u8, (i * 20) as u8])
        });
        let ext = exts[i as usize % 3];
        let format = if ext == "png" { image::ImageFormat::Png } else { image::ImageFormat::Jpeg };
        let path = src.join(format!("s{i:03}.{ext}"));
        img.save_with_format(&path, format).unwrap();
        std::fs::write(src.join(format!("s{i:03}.cls")), format!("{}\n", i % 4)).unwrap();
        std::fs::write(src.join(format!("s{i:03}.json")), "{}").unwrap();
        want.push((std::fs::read(&path).unwrap(), i as usize % 4));
    }
    std::fs::write(src.join("orphan.jpg"), &want[0].0).unwrap();
    let make_tar = |tar: &Path, range: std::ops::Range<usize>, orphan: bool| {
        let mut names: Vec<String> =
            range.flat_map(|i| [exts[i % 3], "cls", "json"].map(|ext| format!("s{i:03}.{ext}"))).collect();
        if orphan {
            names.push("orphan.jpg".into());
        }
        std::fs::create_dir_all(tar.parent().unwrap()).unwrap();
        let status = Command::new("tar").arg("-cf").arg(tar).arg("-C").arg(&src).args(&names).status();
        assert!(status.unwrap().success());
    };
    make_tar(&data.join("train/part-a.tar"), 0..7, false);
    make_tar(&data.join("train/part-b.tar"), 7..12, true);
    make_tar(&data.join("val/part-a.tar"), 0..4, false);

    let pipeline = Pipeline::from_spec(None, [3, 31, 31], None).unwrap();
    let train = ShardSplit::open(&data, "train", None, pipeline.clone()).unwrap();
    assert_eq!(train.len(), 12);
    assert_eq!(train.listing().skipped_when_packed, 1, "the image without a class");
    assert_eq!(train.class_names(), ["0", "1", "2", "3"]);
    for (i, (bytes, label)) in want.iter().enumerate() {
        assert_eq!(&train.image_bytes(i).unwrap(), bytes, "sample {i}");
        assert_eq!(train.label(i), *label);
        assert!(train.load(i, Some(3)).is_ok());
    }
    // The indexes went beside the shards and serve the next opening as they are.
    let idx = data.join("train/part-b.idx");
    let written = std::fs::metadata(&idx).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(ShardSplit::open(&data, "train", None, pipeline.clone()).unwrap().len(), 12);
    assert_eq!(std::fs::metadata(&idx).unwrap().modified().unwrap(), written);
    let val = ShardSplit::open(&data, "val", Some(&train.class_names()), pipeline.clone()).unwrap();
    assert_eq!(val.len(), 4);
    // A validation class the training shards lack, without a classes.txt to name it.
    std::fs::copy(src.join("s000.jpg"), src.join("s100.jpg")).unwrap();
    std::fs::write(src.join("s100.cls"), "7\n").unwrap();
    let status = Command::new("tar")
        .arg("-cf")
        .arg(data.join("val/part-z.tar"))
        .arg("-C")
        .arg(&src)
        .args(["s100.jpg", "s100.cls"])
        .status();
    assert!(status.unwrap().success());
    let err = ShardSplit::open(&data, "val", Some(&train.class_names()), pipeline).err().unwrap();
    assert!(
        err.contains("part-z.tar") && err.contains("has class index 7") && err.contains("classes.txt"),
        "{err}"
    );
    std::fs::remove_file(data.join("val/part-z.tar")).unwrap();
    let (out, _) = ok(&alexrt(&["stats", "--data", s(&data)]));
    assert!(out.starts_with("12 images (0 unreadable, skipped)"), "{out}");

    // A shard replaced by another of the same length is indexed again; a class that is not a
    // number is refused, naming the shard and the member.
    std::fs::write(src.join("s008.cls"), "cat\n").unwrap();
    let before = std::fs::metadata(data.join("train/part-b.tar")).unwrap().len();
    make_tar(&data.join("train/part-b.tar"), 7..12, true);
    assert_eq!(std::fs::metadata(data.join("train/part-b.tar")).unwrap().len(), before);
    refused(&["stats", "--data", s(&data)], &["part-b.tar", "s008.cls", "not a class index"]);
}
