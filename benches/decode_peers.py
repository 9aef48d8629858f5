#!/usr/bin/env python3
"""The peers' side of the data benchmark (benches/decode.sh): the paper's training preprocessing
(short side 256, centre 256, random 227 crop, flip, PCA lighting, normalisation) of the first
--images samples of DATA/train, batched by 32, one untimed pass and one timed. Prints one JSON
object, or {"skipped": why} where the peer cannot run here.

  torchvision  PIL + torchvision transforms in torch's DataLoader over the folder's JPEGs
               (--workers 0: in the main process, one thread: the per-core figure)
  webdataset   the same transforms over tar shards, read with the `webdataset` package
  dali         NVIDIA DALI's CPU pipeline (device_id=None) over the folder's JPEGs or the shards
               (decoders.image, resize, crop_mirror_normalize; it has no PCA lighting step)
"""
import argparse
import glob
import json
import os
import sys
import time

BATCH = 32
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def files_of(data, n):
    root = os.path.join(data, "train")
    out = []
    classes = sorted(os.listdir(root))
    for c, name in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, name))):
            out.append((os.path.join(root, name, f), c))
    return out[:n]


def torch_transform(crop):
    import torch
    from torchvision import transforms

    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])

    def lighting(t, std=0.1):
        alpha = torch.randn(3) * std
        return t + (eigvec @ (alpha * eigval)).view(3, 1, 1)

    return transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(256), transforms.RandomCrop(crop),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Lambda(lighting),
        transforms.Normalize(MEAN, STD),
    ])


class Folder:
    """A map-style dataset over (path, label) pairs."""

    def __init__(self, files, tf):
        self.files, self.tf = files, tf

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.files[i]
        return self.tf(Image.open(path).convert("RGB")), label


def timed_passes(make_iter, count):
    """Runs two passes over the batches make_iter() yields; returns (images, seconds) of the second."""
    secs = n = 0
    for timed in (False, True):
        t = time.perf_counter()
        n = 0
        for images in make_iter():
            n += count(images)
        secs = time.perf_counter() - t
    return n, secs


def run_torchvision(args):
    import torch
    from torch.utils.data import DataLoader

    torch.set_num_threads(1)
    ds = Folder(files_of(args.data, args.images), torch_transform(args.crop))
    dl = DataLoader(ds, batch_size=BATCH, num_workers=args.workers, persistent_workers=args.workers > 0)
    return timed_passes(lambda: dl, lambda b: len(b[1]))


def run_webdataset(args):
    import torch
    from torch.utils.data import DataLoader

    try:
        import webdataset as wds
    except ImportError as e:
        return {"skipped": f"the webdataset package is not installed ({e})"}
    torch.set_num_threads(1)
    shards = sorted(glob.glob(os.path.join(args.shards, "train", "*.tar")))
    tf = torch_transform(args.crop)
    ds = (wds.WebDataset(shards, shardshuffle=False, empty_check=False)
          .decode("pil").to_tuple("jpg;jpeg;png", "cls").map_tuple(tf, int).slice(args.images))
    dl = DataLoader(ds, batch_size=BATCH, num_workers=args.workers, persistent_workers=args.workers > 0)
    return timed_passes(lambda: dl, lambda b: len(b[1]))


def run_dali(args):
    try:
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy  # noqa: F401
    except Exception as e:  # ImportError, or a wheel that does not load here
        return {"skipped": f"NVIDIA DALI does not import here ({type(e).__name__}: {e})"}
    threads = max(args.workers, 1)

    @pipeline_def(batch_size=BATCH, num_threads=threads, device_id=None, exec_dynamic=True)
    def pipe():
        if args.source == "shards":
            shards = sorted(glob.glob(os.path.join(args.shards, "train", "*.tar")))
            jpegs, labels = fn.readers.webdataset(paths=shards, ext=["jpg;jpeg;png", "cls"],
                                                  missing_component_behavior="error", name="r")
        else:
            files = files_of(args.data, args.images)
            jpegs, labels = fn.readers.file(files=[f for f, _ in files], labels=[c for _, c in files], name="r")
        images = fn.decoders.image(jpegs, device="cpu", output_type=types.RGB)
        images = fn.resize(images, resize_shorter=256)
        images = fn.crop(images, crop=(256, 256))
        images = fn.crop_mirror_normalize(
            images, crop=(args.crop, args.crop), crop_pos_x=fn.random.uniform(range=(0.0, 1.0)),
            crop_pos_y=fn.random.uniform(range=(0.0, 1.0)), mirror=fn.random.coin_flip(),
            mean=[255 * m for m in MEAN], std=[255 * s for s in STD], dtype=types.FLOAT, output_layout="CHW")
        return images, labels

    p = pipe()
    p.build()
    steps = max(args.images // BATCH, 1)

    def epoch():
        for _ in range(steps):
            yield p.run()

    return timed_passes(epoch, lambda out: len(out[0]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peer", choices=["torchvision", "webdataset", "dali"])
    ap.add_argument("data", help="the folder of JPEGs (DATA/train/CLASS/*.jpg)")
    ap.add_argument("--shards", help="the shards alexrt pack made of DATA (SHARDS/train/*.tar)")
    ap.add_argument("--source", choices=["folder", "shards"], default="folder")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--crop", type=int, default=227)
    args = ap.parse_args()
    try:
        result = {"torchvision": run_torchvision, "webdataset": run_webdataset, "dali": run_dali}[args.peer](args)
    except Exception as e:  # a peer that fails here is reported, not fatal to the benchmark
        result = {"skipped": f"{args.peer} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
    if isinstance(result, dict):
        print(json.dumps(result))
        return
    n, secs = result
    print(json.dumps(dict(images=n, seconds=secs, images_per_second=n / secs, workers=args.workers)))


if __name__ == "__main__":
    sys.exit(main())
