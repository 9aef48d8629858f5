#!/usr/bin/env python3
"""torchvision's AlexNet as torch.onnx.export writes it, for `alexc import` (docs/interchange.md).

Needs torch, torchvision, onnx, onnxscript and numpy: in a virtual environment OUTSIDE the clone,
with torch's CPU wheel (pip install --index-url https://download.pytorch.org/whl/cpu torch
torchvision; then pip install onnx onnxscript numpy pillow). Never in CI.

Two uses:

  scripts/make-onnx-fixtures.py tests/fixtures/onnx
      The committed fixtures: torchvision.models.AlexNet (its own class and forward) with its layers
      narrowed to 8-16-16-16-16 channels and 32-32-10 features, so that the files are small;
      random weights (seeded). Writes alexnet_torchscript.onnx (dynamo=False, opset 17),
      alexnet_dynamo.onnx and its .data (the newer exporter, weights as external data), two
      224x224 PNG images, and pytorch.json: PyTorch's logits for the images. The test
      tests/e2e/onnx_runtime.rs imports both, runs them with alexrt and compares.

  scripts/make-onnx-fixtures.py --full DIR --alexc PATH --alexrt PATH
      The full-size check, run once by hand (244 MB of weights per model, too big to commit):
      torchvision.models.alexnet() with random weights, exported both ways into DIR, imported by
      alexc, compiled, run by alexrt infer --json --logits on the images, and compared with
      PyTorch's logits. Prints the largest error relative to the logits' scale per exporter.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image

MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def narrowed():
    """torchvision's AlexNet class, each layer replaced by a narrower one of the same kind."""
    m = torchvision.models.AlexNet(num_classes=10)
    widths = {0: (3, 8, 11, 4, 2), 3: (8, 16, 5, 1, 2), 6: (16, 16, 3, 1, 1), 8: (16, 16, 3, 1, 1), 10: (16, 16, 3, 1, 1)}
    for i, (cin, cout, k, s, p) in widths.items():
        m.features[i] = torch.nn.Conv2d(cin, cout, kernel_size=k, stride=s, padding=p)
    m.classifier[1] = torch.nn.Linear(16 * 6 * 6, 32)
    m.classifier[4] = torch.nn.Linear(32, 32)
    m.classifier[6] = torch.nn.Linear(32, 10)
    return m


def images(out, n=2):
    """Seeded 224x224 RGB images (PNG, lossless): alexrt, given no `data` section, takes them as
    they are and normalises with torchvision's mean and std, as the input tensor below does."""
    rng = np.random.default_rng(7)
    paths, tensors = [], []
    for i in range(n):
        pixels = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
        path = os.path.join(out, f"image{i}.png")
        Image.fromarray(pixels).save(path)
        paths.append(path)
        tensors.append(((pixels.astype(np.float64) - MEAN) * (1.0 / STD)).transpose(2, 0, 1).astype(np.float32))
    return paths, torch.from_numpy(np.stack(tensors))


def export(model, x, out, name):
    model.eval()
    ts = os.path.join(out, f"{name}_torchscript.onnx")
    torch.onnx.export(model, x[:1], ts, dynamo=False, opset_version=17, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    dy = os.path.join(out, f"{name}_dynamo.onnx")
    program = torch.onnx.export(model, (x[:1],), dynamo=True)
    program.save(dy, external_data=True)
    return ts, dy


def alexrt_logits(alexc, alexrt, model, work, image_paths):
    graph, weights, plan = (os.path.join(work, f) for f in ("g.ron", "w.safetensors", "plan.bin"))
    subprocess.run([alexc, "import", model, "-o", graph, "--weights", weights], check=True)
    subprocess.run([alexc, "compile", graph, "--mode", "infer", "--batch-size", "1", "-o", plan], check=True)
    out = subprocess.run([alexrt, "infer", plan, "--device", "cpu", "--weights", weights, "--json", "--logits", *image_paths],
                         check=True, capture_output=True, text=True).stdout
    return np.array([i["logits"] for i in json.loads(out)["images"]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--alexc")
    ap.add_argument("--alexrt")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.alexnet() if a.full else narrowed()
    model.eval()
    paths, x = images(a.out)
    with torch.no_grad():
        want = model(x).double().numpy()
    ts, dy = export(model, x, a.out, "alexnet")
    with open(os.path.join(a.out, "pytorch.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "images": [os.path.basename(p) for p in paths],
                   "logits": want.tolist()}, f)
    if a.full:
        for model_path in (ts, dy):
            got = alexrt_logits(a.alexc, a.alexrt, model_path, a.out, paths)
            err = np.abs(got - want).max() / np.abs(want).max()
            print(f"{os.path.basename(model_path)}: max error {err:.2e} of the logits' scale (torch {torch.__version__})")
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
