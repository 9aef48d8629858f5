#!/usr/bin/env python3
"""Distinct ImageNet-sized JPEGs from the colour photographs scikit-image ships, for the data
benchmark (benches/decode.sh): each image a random crop of one photograph (astronaut, cat,
coffee, rocket, motorcycle, retina, Hubble deep field, immunohistochemistry), at one of
ImageNet's usual aspects, rescaled so its long side is 400-500 pixels (ImageNet's train set
averages about 400x350) and saved at JPEG quality 90, in DIR/train/CLASS/ (10 classes).

  make_photos.py DIR N [--long-side A B]

--long-side 1600 2000 makes camera-sized images instead; the sources are at most 1411 pixels,
so those are upscaled and smoother than a camera's (they decode somewhat faster than real ones).
Deterministic: the same N gives the same files."""
import argparse
import os

import numpy as np
from PIL import Image
from skimage import data

SOURCES = ["astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field", "immunohistochemistry"]
ASPECTS = [4 / 3, 3 / 4, 3 / 2, 2 / 3, 1.0, 16 / 9]


def photographs():
    out = [getattr(data, name)() for name in SOURCES]
    left, right, _ = data.stereo_motorcycle()
    out += [left, right]
    return [np.ascontiguousarray(p[..., :3]) for p in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("n", type=int)
    ap.add_argument("--long-side", type=int, nargs=2, default=[400, 500])
    args = ap.parse_args()
    photos = photographs()
    rng = np.random.default_rng(0)
    for i in range(args.n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        aspect = ASPECTS[rng.integers(len(ASPECTS))]
        # The largest box of that aspect, then 55-100% of it, anywhere in the photograph.
        bw, bh = (w, w / aspect) if w / aspect <= h else (h * aspect, h)
        f = rng.uniform(0.55, 1.0)
        cw, ch = max(int(bw * f), 16), max(int(bh * f), 16)
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        crop = Image.fromarray(src[y:y + ch, x:x + cw])
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        long_side = int(rng.integers(args.long_side[0], args.long_side[1] + 1))
        s = long_side / max(cw, ch)
        img = crop.resize((max(round(cw * s), 1), max(round(ch * s), 1)), Image.BICUBIC)
        d = os.path.join(args.dir, "train", f"n{i % 10:08d}")
        os.makedirs(d, exist_ok=True)
        img.save(os.path.join(d, f"{i:06d}.JPEG"), quality=90)


if __name__ == "__main__":
    main()
