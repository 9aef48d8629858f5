//! Checkpoints and weights files that detect damage: any byte changed is refused (naming the
//! tensor when the damage is in its bytes), and `--resume` falls back to the previous checkpoint.

use alexc::ir::Mode;
use alexc::plan::Plan;
use alexrt::checkpoint::{self, RunData};
use alexrt::data::{Dataset, Synthetic};
use alexrt::exec::Executor;
use alexrt::init::Rng;
use alexrt::progress::Progress;
use alexrt::tensor_file::TensorFile;
use alexrt::{weights, Cpu};

fn tiny_plan() -> Plan {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let text = std::fs::read_to_string(root.join("graphs/tiny.ron")).unwrap();
    alexc::compile_str(&text, "tiny.ron", Mode::Train, 8).unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("alexrt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An executor after `steps` training steps, and the data it trained on.
fn trained(plan: &Plan, steps: usize) -> (Executor<Cpu>, Synthetic) {
    let mut exec = Executor::<Cpu>::new(plan, Default::default()).unwrap();
    let data = Synthetic::new(exec.input_shape(), 10, 64, 1, "train");
    for s in 0..steps {
        let (batch, _) = data.batch(&(s * 8..s * 8 + 8).collect::<Vec<_>>(), None);
        exec.step(&batch, 0.01).unwrap();
    }
    (exec, data)
}

fn save(exec: &Executor<Cpu>, data: &Synthetic, dir: &std::path::Path, epoch: usize) {
    let classes = data.class_names();
    let run = RunData { classes: &classes, stats: None, train_images: data.len(), batch_size: 8 };
    let mut progress = Progress::start(&exec.graph.spec);
    progress.epoch = epoch;
    checkpoint::save(exec, dir, &progress, &run).unwrap();
}

#[test]
fn a_checkpoint_with_any_byte_flipped_is_refused() {
    let dir = scratch("flip");
    let plan = tiny_plan();
    let (exec, data) = trained(&plan, 1);
    save(&exec, &data, &dir, 1);
    let path = checkpoint::checkpoint_path(&dir);
    let good = std::fs::read(&path).unwrap();
    assert!(TensorFile::from_bytes(good.clone(), "ok").unwrap().checksummed());
    let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    // Every byte of the header, and a spread of offsets through the tensor data, each with one
    // bit flipped (a bit flip never turns JSON padding into other whitespace).
    let mut rng = Rng::new(3);
    let mut offsets: Vec<usize> = (0..header).collect();
    offsets.extend((0..2000).map(|_| header + rng.below(good.len() - header)));
    let mut named = 0;
    for (i, &at) in offsets.iter().enumerate() {
        let mut bad = good.clone();
        bad[at] ^= 1 << (i % 8);
        let err = match TensorFile::from_bytes(bad, "ckpt") {
            Ok(_) => panic!("a flipped bit at byte {at} of {} was accepted", good.len()),
            Err(e) => e.to_string(),
        };
        if at >= header {
            assert!(err.contains("tensor `") && err.contains("fails its checksum"), "byte {at}: {err}");
            named += 1;
        }
    }
    assert_eq!(named, 2000);
}

#[test]
fn resume_falls_back_to_the_previous_checkpoint_and_says_why() {
    let dir = scratch("fallback");
    let plan = tiny_plan();
    let (first, data) = trained(&plan, 1);
    save(&first, &data, &dir, 1);
    let (second, _) = trained(&plan, 2);
    save(&second, &data, &dir, 2);
    assert!(checkpoint::previous_path(&dir).exists(), "the checkpoint before is kept beside the new one");

    // Intact: the latest is used.
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let r = checkpoint::resume(&mut exec, &dir).unwrap();
    assert!(r.fell_back.is_none());
    assert_eq!((r.progress.epoch, exec.steps_done), (2, 2));

    // The latest damaged in one weight: the previous one is used, and the reason names the tensor.
    let latest = checkpoint::checkpoint_path(&dir);
    let mut bytes = std::fs::read(&latest).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    std::fs::write(&latest, &bytes).unwrap();
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let r = checkpoint::resume(&mut exec, &dir).unwrap();
    let why = r.fell_back.expect("fell back").to_string();
    assert!(why.contains("fails its checksum") && why.contains("tensor `"), "{why}");
    assert_eq!(r.path, checkpoint::previous_path(&dir));
    assert_eq!((r.progress.epoch, exec.steps_done), (1, 1));
    for (name, _) in first.persistent_names() {
        assert_eq!(
            exec.persistent_values(&name).unwrap().unwrap(),
            first.persistent_values(&name).unwrap().unwrap()
        );
    }

    // The damaged latest is set aside, so the run's next save keeps the good previous one.
    assert!(!latest.exists() && dir.join(checkpoint::SET_ASIDE_FILE).exists());
    save(&exec, &data, &dir, 3);
    let prev = checkpoint::previous_path(&dir);
    let kept = checkpoint::read_meta(&TensorFile::read(&prev).unwrap()).unwrap().unwrap();
    assert_eq!(kept.progress.epoch, 1, "the good previous checkpoint was not replaced");

    // Both damaged: refused, naming both files.
    for (path, at) in [(&latest, 20), (&prev, 20)] {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] ^= 0x01;
        std::fs::write(path, &bytes).unwrap();
    }
    let mut exec = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let err = checkpoint::resume(&mut exec, &dir).unwrap_err().to_string();
    assert!(
        err.contains("neither checkpoint")
            && err.contains("checkpoint.safetensors:")
            && err.contains("checkpoint.prev.safetensors"),
        "{err}"
    );
}

#[test]
fn a_damaged_weights_file_is_refused_and_a_foreign_one_is_read() {
    let dir = scratch("weights-damage");
    let plan = tiny_plan();
    let (exec, _) = trained(&plan, 1);
    let path = dir.join("w.safetensors");
    weights::save(&exec, &path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let mut other = Executor::<Cpu>::new(&plan, Default::default()).unwrap();
    let err = weights::load(&mut other, &path).unwrap_err().to_string();
    assert!(err.contains("fails its checksum"), "{err}");

    // A file without checksums (as PyTorch writes them) loads as it is.
    let foreign = dir.join("torch.safetensors");
    let names = exec.param_names();
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = names
        .iter()
        .map(|(name, n)| {
            let values = exec.persistent_values(name).unwrap().unwrap();
            (
                name.clone(),
                exec.graph.g[*n].outputs[0].dims.clone(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(name, shape, b)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(&foreign, safetensors::serialize(views, None).unwrap()).unwrap();
    weights::load(&mut other, &foreign).unwrap();
    for (name, _) in names {
        assert_eq!(
            other.persistent_values(&name).unwrap().unwrap(),
            exec.persistent_values(&name).unwrap().unwrap()
        );
    }
}
