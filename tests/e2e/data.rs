//! Training on a folder of JPEGs as a person would: the paper's augmentation, unreadable images
//! and stray files skipped and counted, statistics, kill and resume with the same bits, eval
//! and infer on the result.

use std::path::{Path, PathBuf};
use std::process::Command;

use alexc::ir::Mode;
use alexrt::data::augment::Pipeline;
use alexrt::data::{Dataset, ImageFolder, Synthetic};

#[path = "common/cli.rs"]
mod cli;
use cli::{alexrt, ok, root, Scratch};

/// tiny.ron with the paper's kind of data section, for 31x31 crops of 36x36 squares.
fn tiny_text() -> String {
    std::fs::read_to_string(root().join("graphs/tiny.ron")).unwrap().replace(
        "    training: (batch_size: 32, epochs: 5, seed: 7),",
        "    training: (batch_size: 16, epochs: 5, seed: 7),
    data: (resize_short_side: 36, center_crop: 36, random_crop: true, horizontal_flip: true,
           lighting: Pca(std: 0.1, basis: Dataset), mean: Dataset, std: (60.0, 60.0, 60.0)),",
    )
}

fn write_plan(dir: &Path, mode: Mode) -> PathBuf {
    let checked = alexc::front_end_str(&tiny_text(), "tiny.ron", &mut |_, _, _| {}).unwrap();
    let lowered = alexc::lower(&checked, mode, 16, &mut |_, _, _| {}).unwrap();
    let path = dir.join(format!("{mode:?}.bin"));
    lowered.into_plan(mode, "tiny.ron").write(&path).unwrap();
    path
}

/// An ImageNet-layout folder of JPEGs drawn from the synthetic patterns (40x48, so that the
/// resize and crops do something), with a corrupt image, a stray file, and per split `n` images.
fn make_dataset(dir: &Path, train: usize, val: usize) {
    for (split, n) in [("train", train), ("val", val)] {
        let synth = Synthetic::new([3, 40, 48], 10, n, 3, split);
        for i in 0..n {
            let s = synth.load(i, None).unwrap();
            let class = dir.join(split).join(format!("n{:08}", s.label));
            std::fs::create_dir_all(&class).unwrap();
            let img = image::RgbImage::from_fn(48, 40, |x, y| {
                let px = |c: usize| {
                    (128.0 + 50.0 * s.image[(c * 40 + y as usize) * 48 + x as usize]).clamp(0.0, 255.0) as u8
                };
                image::Rgb([px(0), px(1), px(2)])
            });
            img.save(class.join(format!("{split}_{i:05}.JPEG"))).unwrap();
        }
    }
    std::fs::write(dir.join("train/n00000003/broken.JPEG"), b"\xff\xd8\xff this is not a jpeg").unwrap();
    std::fs::write(dir.join("train/n00000004/notes.txt"), b"not an image").unwrap();
    std::fs::write(dir.join("train/README"), b"stray").unwrap();
}

fn losses(run: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["train"]["loss"].as_f64().unwrap(), v["val"]["loss"].as_f64().unwrap())
        })
        .collect()
}

/// The CRC-32 of each tensor of a run's last checkpoint, by name.
fn tensor_crcs(run: &Path) -> Vec<(String, u32)> {
    let bytes = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut crcs: Vec<(String, u32)> =
        file.tensors().into_iter().map(|(name, t)| (name, crc32fast::hash(t.data()))).collect();
    crcs.sort();
    crcs
}

#[test]
fn listing_skips_and_counts_what_is_not_an_image() {
    let dir = Scratch::new("data-listing");
    make_dataset(&dir, 40, 10);
    std::fs::create_dir_all(dir.join("train/n00000099")).unwrap();
    let pipeline = Pipeline::from_spec(None, [3, 31, 31], None).unwrap();
    let f = ImageFolder::open(&dir, "train", None, pipeline.clone()).unwrap();
    assert_eq!(f.report.images, 41, "40 images and the broken one, which only decoding finds");
    assert_eq!(f.report.stray_files, 2);
    assert_eq!(f.report.empty_classes, ["n00000099"]);
    assert_eq!(f.classes(), 11);
    let broken = (0..f.len()).find(|&i| f.path(i).ends_with("broken.JPEG")).unwrap();
    let (batch, failed) = f.batch(&[0, broken, 1], Some(5));
    assert_eq!(batch.len(), 2);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].1.contains("broken.JPEG"), "{}", failed[0].1);
    // Errors for what is not there.
    let err = ImageFolder::open(&dir.join("nowhere"), "train", None, pipeline.clone()).err().unwrap();
    assert!(err.contains("cannot list the train images"), "{err}");
    std::fs::create_dir_all(dir.join("empty/train/a")).unwrap();
    let err = ImageFolder::open(&dir.join("empty"), "train", None, pipeline).err().unwrap();
    assert!(err.contains("no images found"), "{err}");
}

#[test]
fn an_unreadable_images_message_is_one_line_naming_the_file() {
    let dir = Scratch::new("data-one-line");
    let class = dir.join("train/n00000000");
    std::fs::create_dir_all(&class).unwrap();
    // zune-jpeg ends the error of the first with a newline.
    std::fs::write(class.join("a.JPEG"), b"\xff\xd8\xff not a jpeg").unwrap();
    std::fs::write(class.join("b.JPEG"), b"\xff\xd8\xff this is not a jpeg").unwrap();
    std::fs::write(class.join("c.png"), b"\x89PNG\r\n\x1a\n but no chunks").unwrap();
    let pipeline = Pipeline::from_spec(None, [3, 8, 8], None).unwrap();
    let f = ImageFolder::open(&dir, "train", None, pipeline).unwrap();
    let (batch, failed) = f.batch(&[0, 1, 2], Some(1));
    assert_eq!((batch.len(), failed.len()), (0, 3));
    for ((i, message), name) in failed.iter().zip(["a.JPEG", "b.JPEG", "c.png"]) {
        assert!(
            message.starts_with(&f.path(*i).display().to_string()) && message.contains(name),
            "{message}"
        );
        assert!(!message.contains('\n') && message.trim_end() == message, "not one line: {message:?}");
    }
}

#[test]
fn an_image_whose_file_name_is_not_utf8_is_read_like_any_other() {
    use std::os::unix::ffi::OsStrExt;
    let dir = Scratch::new("data-non-utf8");
    let class = dir.join("train/n00000000");
    std::fs::create_dir_all(&class).unwrap();
    // "café.png" in Latin-1: the byte 0xe9 alone is not UTF-8.
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    image::RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30])).save(class.join(name)).unwrap();
    image::RgbImage::from_pixel(8, 8, image::Rgb([30, 20, 10])).save(class.join("plain.png")).unwrap();
    let pipeline = Pipeline::from_spec(None, [3, 8, 8], None).unwrap();
    let f = ImageFolder::open(&dir, "train", None, pipeline).unwrap();
    assert_eq!((f.len(), f.report.stray_files), (2, 0));
    let at =
        (0..f.len()).find(|&i| f.path(i).file_name() == Some(name)).expect("the file is listed by its name");
    let sample = f.load(at, None).unwrap_or_else(|e| panic!("the image was not read: {e}"));
    assert_eq!(sample.image.len(), 3 * 8 * 8);
}

#[test]
fn augmentation_is_seeded_and_test_time_is_the_centre() {
    let dir = Scratch::new("data-augment");
    make_dataset(&dir, 10, 2);
    let checked = alexc::front_end_str(&tiny_text(), "tiny.ron", &mut |_, _, _| {}).unwrap();
    let stats = alexrt::data::stats::Stats {
        images: 1,
        skipped: 0,
        mean: [120.0, 110.0, 100.0],
        eigenvalues: [0.2, 0.02, 0.004],
        eigenvectors: [[-0.57, 0.72, 0.4], [-0.58, 0.0, -0.81], [-0.58, -0.69, 0.42]],
    };
    let p = Pipeline::from_spec(checked.graph.spec.data.as_ref(), [3, 31, 31], Some(&stats)).unwrap();
    let f = ImageFolder::open(&dir, "train", None, p.clone()).unwrap();
    let a = f.load(0, Some(1)).unwrap().image;
    assert_eq!(a.len(), 3 * 31 * 31);
    assert_eq!(a, f.load(0, Some(1)).unwrap().image, "the same seed, the same crop, flip and lighting");
    assert_ne!(a, f.load(0, Some(2)).unwrap().image);
    let centre = f.load(0, None).unwrap().image;
    assert_eq!(centre, f.load(0, None).unwrap().image);
    // The centre crop of the rescaled image, mean subtracted and divided by the std.
    let img = f.decode(0).unwrap();
    let square = p.rescale(&img);
    assert_eq!(square.dimensions(), (36, 36));
    let px = square.get_pixel(2 + 5, 2 + 7);
    let want = (px[1] as f64 - 110.0) / 60.0;
    assert!((centre[31 * 31 + 7 * 31 + 5] as f64 - want).abs() < 1e-5);
    assert_eq!(p.ten_crops(&img).len(), 10);
    // Without statistics, a graph that asks for the dataset's mean says what to run.
    let err = Pipeline::from_spec(checked.graph.spec.data.as_ref(), [3, 31, 31], None).unwrap_err();
    assert!(err.contains("run `alexrt stats --data DIR` first"), "{err}");
}

#[test]
fn stats_of_constant_images_are_exact() {
    let dir = Scratch::new("data-stats");
    for (i, colour) in [[10u8, 20, 30], [30, 60, 90]].iter().enumerate() {
        let class = dir.join("train").join(format!("c{i}"));
        std::fs::create_dir_all(&class).unwrap();
        for k in 0..3 {
            image::RgbImage::from_pixel(8, 8, image::Rgb(*colour))
                .save(class.join(format!("{k}.png")))
                .unwrap();
        }
    }
    let (out, _) = ok(&alexrt(&["stats", "--data", dir.to_str().unwrap()]));
    assert!(out.contains("6 images (0 unreadable, skipped): mean RGB 20.00 40.00 60.00"), "{out}");
    let s = alexrt::data::stats::load(&dir).unwrap().unwrap();
    // Two colours on a line through the origin: one eigenvalue carries all the variance.
    let var = [10.0f64, 20.0, 30.0].iter().map(|d| (d / 255.0) * (d / 255.0)).sum::<f64>();
    assert!((s.eigenvalues[0] - var).abs() < 1e-9, "{:?} vs {var}", s.eigenvalues);
    assert!(s.eigenvalues[1].abs() < 1e-9 && s.eigenvalues[2].abs() < 1e-9);
    let v = [s.eigenvectors[0][0], s.eigenvectors[1][0], s.eigenvectors[2][0]];
    let norm = 14f64.sqrt();
    for (a, b) in v.iter().zip([1.0 / norm, 2.0 / norm, 3.0 / norm]) {
        assert!((a.abs() - b).abs() < 1e-6, "{v:?}");
    }
}

#[test]
fn stats_are_the_same_bits_on_one_two_and_three_threads() {
    let dir = Scratch::new("data-stats-threads");
    make_dataset(&dir, 100, 1);
    let pipeline = Pipeline::from_spec(None, [3, 31, 31], None).unwrap();
    let f = ImageFolder::open(&dir, "train", None, pipeline).unwrap();
    let stats = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let s = pool.install(|| alexrt::data::stats::compute(&f, None, &|_| {}));
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
        (bits(&s.mean), bits(&s.eigenvalues), s.eigenvectors.map(|c| bits(&c)), s.skipped)
    };
    let one = stats(1);
    assert_eq!(one.3, 1, "the broken image is skipped");
    assert_eq!(stats(2), one, "2 threads against 1");
    assert_eq!(stats(3), one, "3 threads against 1");
}

#[test]
fn train_kill_resume_eval_infer() {
    let dir = Scratch::new("data-run");
    let data = dir.join("data");
    make_dataset(&data, 320, 80);
    let plan = write_plan(&dir, Mode::Train);
    let (plan_s, data_s) = (plan.to_str().unwrap().to_string(), data.to_str().unwrap().to_string());
    ok(&alexrt(&["stats", "--data", &data_s, "--plan", &plan_s]));

    // The uninterrupted run.
    let full = dir.join("full");
    let (out, err) =
        ok(&alexrt(&["train", &plan_s, "--data", &data_s, "--epochs", "3", "--out", full.to_str().unwrap()]));
    assert!(err.contains("train: 321 images in 10 classes, 2 stray files skipped"), "{err}");
    assert!(err.contains("skipped an unreadable image"), "{err}");
    assert!(out.contains("trained `tiny` for 3 epochs"), "{out}");
    assert!(full.join("loss.png").exists() && full.join("checkpoint.safetensors").exists());
    let want = losses(&full);
    assert_eq!(want.len(), 3);
    assert!(want[2].1 < want[0].1, "validation loss falls: {want:?}");

    // The same run, killed after its second checkpoint, then resumed.
    let cut = dir.join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_alexrt-under-test"))
        .args(["train", &plan_s, "--data", &data_s, "--epochs", "3", "--checkpoint-every", "7"])
        .args(["--out", cut.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = cut.join("checkpoint.safetensors");
    let mut seen = 0;
    let mut last = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while seen < 2 && std::time::Instant::now() < deadline {
        let m = std::fs::metadata(&ckpt).and_then(|m| m.modified()).ok();
        if m.is_some() && m != last {
            seen += 1;
            last = m;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen >= 1, "no checkpoint was written before the kill");
    let (_, err) = ok(&alexrt(&[
        "train",
        &plan_s,
        "--data",
        &data_s,
        "--epochs",
        "3",
        "--out",
        cut.to_str().unwrap(),
        "--resume",
    ]));
    assert!(err.contains("resuming from"), "{err}");
    let got = losses(&cut);
    assert_eq!(got.len(), 3, "every epoch is recorded once: {got:?}");
    // Bit for bit: the losses, and every parameter and momentum buffer of the last checkpoint.
    assert_eq!(got, want, "the resumed run's losses against the uninterrupted run's");
    assert_eq!(tensor_crcs(&cut), tensor_crcs(&full), "the resumed run's last checkpoint");

    // Evaluate and infer with the checkpoint.
    let ckpt = full.join("checkpoint.safetensors");
    let (out, _) = ok(&alexrt(&["eval", &plan_s, "--weights", ckpt.to_str().unwrap(), "--data", &data_s]));
    assert!(out.contains("80 validation images"), "{out}");
    assert!(out.contains("centre crop: top-1") && out.contains("ten crops:   top-1"), "{out}");
    let infer_plan = write_plan(&dir, Mode::Infer);
    let image = std::fs::read_dir(data.join("val/n00000002")).unwrap().next().unwrap().unwrap().path();
    let (out, _) = ok(&alexrt(&[
        "infer",
        infer_plan.to_str().unwrap(),
        "--weights",
        ckpt.to_str().unwrap(),
        image.to_str().unwrap(),
    ]));
    assert_eq!(out.lines().count(), 6, "the image and its top five: {out}");
    assert!(out.contains("n00000"), "class names from the checkpoint: {out}");
    let o = alexrt(&[
        "infer",
        infer_plan.to_str().unwrap(),
        "--weights",
        ckpt.to_str().unwrap(),
        plan_s.as_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a readable image"));
}

#[test]
fn a_missing_or_empty_dataset_is_a_clear_error() {
    let dir = Scratch::new("data-missing");
    let plan = write_plan(&dir, Mode::Train);
    let o = alexrt(&["train", plan.to_str().unwrap(), "--data", dir.join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such dataset folder"));
    std::fs::create_dir_all(dir.join("empty/train")).unwrap();
    let o = alexrt(&["train", plan.to_str().unwrap(), "--data", dir.join("empty").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("alexrt stats") || err.contains("no images found"), "{err}");
    // A training split without a val/ beside it: the error says why val/ is needed.
    let no_val = dir.join("no-val");
    make_dataset(&no_val, 20, 2);
    std::fs::remove_dir_all(no_val.join("val")).unwrap();
    assert_eq!(alexrt(&["stats", "--data", no_val.to_str().unwrap()]).status.code(), Some(0));
    let o = alexrt(&["train", plan.to_str().unwrap(), "--data", no_val.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(2) && err.contains("no val/ split") && err.contains("validates"),
        "{err}"
    );
}

#[test]
fn resume_and_eval_refuse_what_does_not_match() {
    let dir = Scratch::new("data-mismatch");
    let data = dir.join("data");
    make_dataset(&data, 64, 16);
    let plan = write_plan(&dir, Mode::Train);
    let (plan_s, data_s) = (plan.to_str().unwrap().to_string(), data.to_str().unwrap().to_string());
    ok(&alexrt(&["stats", "--data", &data_s]));
    let run = dir.join("run");
    let run_s = run.to_str().unwrap().to_string();
    ok(&alexrt(&["train", &plan_s, "--data", &data_s, "--epochs", "1", "--out", &run_s]));
    let refuse = |args: &[&str], fragment: &str| {
        let o = alexrt(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(fragment), "{args:?}: expected `{fragment}` in {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    // An earlier run's checkpoint is not overwritten by a fresh run.
    refuse(&["train", &plan_s, "--data", &data_s, "--out", &run_s], "pass --resume to continue it");
    // A resumed run must see the same data.
    refuse(&["train", &plan_s, "--epochs", "2", "--out", &run_s, "--resume"], "resume with the same --data");
    refuse(
        &["train", &plan_s, "--data", &data_s, "--out", dir.join("none").to_str().unwrap(), "--resume"],
        "no checkpoint to resume from",
    );
    refuse(&["train", &plan_s, "--epochs", "0"], "give 1 or more");
    refuse(&["train", &plan_s, "--workers", "x"], "give a whole number, 1 or more");
    // Evaluating on a folder with more classes than the graph.
    let wide = dir.join("wide");
    make_dataset(&wide, 20, 4);
    std::fs::create_dir_all(wide.join("train/n00000011")).unwrap();
    std::fs::copy(
        std::fs::read_dir(wide.join("train/n00000001")).unwrap().next().unwrap().unwrap().path(),
        wide.join("train/n00000011/x.JPEG"),
    )
    .unwrap();
    ok(&alexrt(&["stats", "--data", wide.to_str().unwrap()]));
    let weights = dir.join("w.safetensors");
    ok(&alexrt(&[
        "train",
        &plan_s,
        "--epochs",
        "1",
        "--train-images",
        "32",
        "--val-images",
        "16",
        "--out",
        dir.join("syn").to_str().unwrap(),
        "--save-weights",
        weights.to_str().unwrap(),
    ]));
    refuse(
        &["eval", &plan_s, "--weights", weights.to_str().unwrap(), "--data", wide.to_str().unwrap()],
        "but the graph has `classes: 10`",
    );
    // Plain weights (no class list) and a folder with only val/: its folders give the classes.
    let val_only = dir.join("valonly");
    make_dataset(&val_only, 10, 60);
    std::fs::remove_dir_all(val_only.join("train")).unwrap();
    std::fs::copy(data.join("alexrt-stats.json"), val_only.join("alexrt-stats.json")).unwrap();
    let (_, err) = ok(&alexrt(&[
        "eval",
        &plan_s,
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        val_only.to_str().unwrap(),
    ]));
    assert!(err.contains("classes are val/'s folders"), "{err}");
    // Statistics of nothing readable are not written.
    let broken = dir.join("broken");
    std::fs::create_dir_all(broken.join("train/a")).unwrap();
    std::fs::write(broken.join("train/a/x.JPEG"), b"not a jpeg").unwrap();
    refuse(&["stats", "--data", broken.to_str().unwrap()], "no readable images");
    assert!(!broken.join("alexrt-stats.json").exists());
}
