#!/usr/bin/env python3
"""PyTorch reference for alexrt's parity tests.

Builds a graph file's network in PyTorch (the same layers, PyTorch's names and layouts), fills
inputs and parameters from a formula that the Rust tests compute too (an integer hash, exact in
both languages), runs a forward pass, the gradients, and three SGD steps with dropout off, in
float64, and writes what the tests compare against: logits, the loss, and for every parameter its
gradient and its value after three steps, as samples and checksums (the full tensors of
alexnet.ron would be hundreds of megabytes). float64, because in float32 the early layers'
gradients of a deep net differ from the exact ones by up to a few percent in PyTorch itself.

    python scripts/pytorch_reference.py graphs/tiny.ron tests/fixtures/tiny.json --batch 4

The graph file is read with a small RON reader for the subset alexc's graphs use.
"""
import argparse
import json
import math
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

SAMPLES = 64


# ---------------------------------------------------------------------------------------------
# The formula both sides compute (tests/e2e/common/parity.rs has the same).

MASK = (1 << 64) - 1


def name_seed(name: str) -> int:
    h = 0xCBF29CE484222325  # FNV-1a
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def formula(name: str, n: int, scale: float) -> np.ndarray:
    """`scale * u` with u uniform in [-1, 1) from SplitMix64 of (name, index), rounded to f32."""
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(name_seed(name))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2.0 - 1.0
    return (scale * u).astype(np.float32)


def param_scale(role: str, fan_in: int) -> float:
    # Uniform with PyTorch's default bound for weights; small biases.
    return 1.0 / math.sqrt(fan_in) if role == "weight" else 0.1


# ---------------------------------------------------------------------------------------------
# Just enough RON for alexc's graph files: the nodes, the input, classes, and the optimizer.

def parse_graph(text: str):
    text = re.sub(r"//[^\n]*", "", text)
    inp = re.search(r"input:\s*\(\s*name:\s*\"(\w+)\",\s*channels:\s*(\d+),\s*height:\s*(\d+),\s*width:\s*(\d+)", text)
    classes = int(re.search(r"\bclasses:\s*(\d+)", text).group(1))
    opt = re.search(r"optimizer:\s*Sgd\(([^)]*)\)", text).group(1)
    def num(key, default):
        m = re.search(key + r":\s*([-0-9.e]+)", opt)
        return float(m.group(1)) if m else default
    nodes = []
    for m in re.finditer(r"\(name:\s*\"([\w-]+)\",\s*op:\s*(\w+)(\((?:[^()]|\([^()]*(?:\([^()]*\))?[^()]*\))*\))?,\s*inputs:\s*\[([^\]]*)\]", text):
        name, op, attrs, inputs = m.group(1), m.group(2), m.group(3) or "", m.group(4)
        def attr(key, default=None):
            a = re.search(r"\b" + key + r":\s*([-\w.]+)", attrs)
            return a.group(1) if a else default
        nodes.append(dict(
            name=name, op=op, inputs=re.findall(r"\"([\w-]+)\"", inputs),
            out=int(attr("out_channels") or attr("out_features") or 0),
            kernel=int(attr("kernel", 1)), stride=int(attr("stride", 1)), padding=int(attr("padding", 0)),
            groups=int(attr("groups", 1)), size=int(attr("size", 1)), alpha=float(attr("alpha", 0)),
            rate=float(attr("rate", 0)),
            beta=float(attr("beta", 0)), k=float(attr("k", 0)), convention=attr("convention"),
            use_bias=attr("use_bias", "true") == "true",
        ))
    return dict(input=(inp.group(1), int(inp.group(2)), int(inp.group(3)), int(inp.group(4))),
                classes=classes, nodes=nodes,
                lr=num("lr", 0.01), momentum=num("momentum", 0.0), weight_decay=num("weight_decay", 0.0))


# ---------------------------------------------------------------------------------------------

class Net(torch.nn.Module):
    def __init__(self, g, dropout=False):
        super().__init__()
        self.g = g
        self.dropout = dropout  # parity runs have dropout off
        name, c, h, w = g["input"]
        shapes = {name: (c, h, w)}
        for n in g["nodes"]:
            src = shapes[n["inputs"][0]]
            if n["op"] == "Conv2d":
                conv = torch.nn.Conv2d(src[0], n["out"], n["kernel"], n["stride"], n["padding"],
                                       groups=n["groups"], bias=n["use_bias"])
                self.add_module(n["name"], conv)
                ho = (src[1] + 2 * n["padding"] - n["kernel"]) // n["stride"] + 1
                wo = (src[2] + 2 * n["padding"] - n["kernel"]) // n["stride"] + 1
                shapes[n["name"]] = (n["out"], ho, wo)
            elif n["op"] == "Linear":
                self.add_module(n["name"], torch.nn.Linear(src[0], n["out"], bias=n["use_bias"]))
                shapes[n["name"]] = (n["out"],)
            elif n["op"] == "MaxPool":
                ho = (src[1] + 2 * n["padding"] - n["kernel"]) // n["stride"] + 1
                wo = (src[2] + 2 * n["padding"] - n["kernel"]) // n["stride"] + 1
                shapes[n["name"]] = (src[0], ho, wo)
            elif n["op"] == "Flatten":
                shapes[n["name"]] = (int(np.prod(src)),)
            else:
                shapes[n["name"]] = src

    def forward(self, x):
        vals = {self.g["input"][0]: x}
        last = None
        for n in self.g["nodes"]:
            a = vals[n["inputs"][0]]
            op = n["op"]
            if op in ("Conv2d", "Linear"):
                y = getattr(self, n["name"])(a)
            elif op == "Relu":
                y = F.relu(a)
            elif op == "Lrn":
                # PyTorch divides alpha by size: the paper's alpha on the sum is alpha * size here.
                alpha = n["alpha"] * n["size"] if n["convention"] == "Paper" else n["alpha"]
                y = F.local_response_norm(a, n["size"], alpha, n["beta"], n["k"])
            elif op == "MaxPool":
                y = F.max_pool2d(a, n["kernel"], n["stride"], n["padding"])
            elif op == "Dropout":
                y = F.dropout(a, n["rate"], self.training and self.dropout)
            elif op == "Flatten":
                y = torch.flatten(a, 1)
            elif op == "Add":
                y = a + vals[n["inputs"][1]]
            else:
                raise SystemExit(f"unsupported op {op}")
            vals[n["name"]] = y
            last = y
        return last


def summary(t: torch.Tensor):
    flat = t.detach().reshape(-1).double()
    n = flat.numel()
    stride = max(1, n // SAMPLES)
    idx = list(range(0, min(n, SAMPLES))) + list(range(0, n, stride))[:SAMPLES]
    return dict(shape=list(t.shape), indices=idx, values=[float(flat[i]) for i in idx],
                sum=float(flat.sum()), abs_sum=float(flat.abs().sum()), sq_sum=float((flat * flat).sum()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("graph")
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    g = parse_graph(open(args.graph).read())
    torch.set_default_dtype(torch.float64)
    net = Net(g)
    for pname, p in net.named_parameters():
        role = "weight" if pname.endswith("weight") else "bias"
        weight = dict(net.named_parameters())[pname.rsplit(".", 1)[0] + ".weight"]
        fan_in = int(np.prod(weight.shape[1:]))
        values = formula(pname, p.numel(), param_scale(role, fan_in)).astype(np.float64)
        p.data = torch.from_numpy(values.reshape(p.shape))
    _, c, h, w = g["input"]
    x = torch.from_numpy(formula("input", args.batch * c * h * w, 1.0).astype(np.float64).reshape(args.batch, c, h, w))
    y = torch.tensor([(3 * i + 1) % g["classes"] for i in range(args.batch)])

    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out = dict(graph=g, batch=args.batch, steps=args.steps, torch=torch.__version__, dtype="float64",
               logits=logits.detach().reshape(-1).tolist(), loss=float(loss.detach()),
               grads={n: summary(p.grad) for n, p in net.named_parameters()})
    net.zero_grad()
    opt = torch.optim.SGD(net.parameters(), lr=g["lr"], momentum=g["momentum"], weight_decay=g["weight_decay"])
    losses = []
    for _ in range(args.steps):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    out["losses"] = losses
    out["params_after"] = {n: summary(p) for n, p in net.named_parameters()}
    del out["graph"]["nodes"]
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {args.out}: loss {out['loss']:.6f}, {len(out['grads'])} parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
