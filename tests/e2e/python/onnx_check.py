"""The ONNX side of tests/e2e/onnx_runtime.rs: checks a model with onnx.checker (full_check) and
runs it with onnxruntime on images, preprocessed as the model's metadata_props say (for the
test's images, which are already square at the resize size: the centre crops only). Prints one
JSON object: {"checked": true, "logits": [[...] per image]}.

usage: onnx_check.py MODEL.onnx [--no-metadata MEAN STD SIZE] IMAGE...
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime
from PIL import Image


def main():
    args = sys.argv[1:]
    path = args.pop(0)
    model = onnx.load(path)  # external data, if any, is read from beside the model
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    center = None
    if args and args[0] == "--no-metadata":
        mean = [float(v) for v in args[1].split(",")]
        std = [float(v) for v in args[2].split(",")]
        size = int(args[3])
        args = args[4:]
    else:
        mean = [float(v) for v in meta["preprocessing.mean"].split(",")]
        std = [float(v) for v in meta.get("preprocessing.std", "1,1,1").split(",")]
        size = int(meta["preprocessing.input"].split("x")[1])
        center = int(meta["preprocessing.center_crop"])
    batch = []
    for image in args:
        pixels = np.asarray(Image.open(image).convert("RGB"), dtype=np.float64)
        side = pixels.shape[0]
        if center is not None and center < side:
            o = (side - center) // 2
            pixels = pixels[o : o + center, o : o + center]
        o = (pixels.shape[0] - size) // 2
        pixels = pixels[o : o + size, o : o + size]
        x = (pixels - np.array(mean)) * (1.0 / np.array(std))
        batch.append(x.transpose(2, 0, 1).astype(np.float32))
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = [session.run(None, {name: x[None]})[0][0].tolist() for x in batch]
    print(json.dumps({"checked": True, "logits": logits}))


if __name__ == "__main__":
    main()
