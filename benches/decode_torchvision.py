#!/usr/bin/env python3
"""torchvision's side of the data benchmark: the paper's training preprocessing of DIR/train
images (short side 256, centre 256, random 227 crop, flip, PCA lighting, normalisation) in one
process with one thread. Prints one JSON object."""
import argparse
import json
import os
import time

import torch
from PIL import Image
from torchvision import transforms

EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


def lighting(t, std=0.1):
    alpha = torch.randn(3) * std
    return t + (EIGVEC @ (alpha * EIGVAL)).view(3, 1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--crop", type=int, default=227)
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = []
    root = os.path.join(args.data, "train")
    for c in sorted(os.listdir(root)):
        for f in sorted(os.listdir(os.path.join(root, c))):
            files.append(os.path.join(root, c, f))
    files = files[: args.images]
    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(256), transforms.RandomCrop(args.crop),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Lambda(lighting),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    for timed in (False, True):
        t = time.perf_counter()
        for f in files:
            tf(Image.open(f).convert("RGB"))
        secs = time.perf_counter() - t
    print(json.dumps(dict(images=len(files), seconds=secs, images_per_second=len(files) / secs)))


if __name__ == "__main__":
    main()
