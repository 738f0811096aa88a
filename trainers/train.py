"""Trains a small classifier on a certified tabular dataset and exports it to ONNX.

Run by the factory's training launcher as a job: CUDA when present, else CPU. Writes into --out:
  model.onnx        inputs "input" [n, features] float32 (raw features), output "output" [n, 1] = P(positive)
  metrics.json      held-out metrics as the trainer saw them (the evaluator recomputes them independently)
  environment.json  framework versions, device, image digest
  environment-measured.json  the interpreter and every installed package (name, version) as this
                    process sees them, canonical JSON: its sha256 is the training environment's digest
  trainer-code.json the trainer's own source files as this process loaded them, each with its sha256
  training-distribution.json  per feature the training split's decile edges and bin proportions, and
                    the distribution of the model's scores on it: what monitoring compares traffic with
  result.json       written last: the job finished and its files are complete
  refused.json      instead, when the certified file breaks the numeric rule or the schema (exit 3)
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CertifiedDataRefused, binary_metrics, load_certified, refuse, split, training_distribution  # noqa: E402


def canonical_name(name):
    """PEP 503 normalised distribution name: what pip and PyPI compare."""
    return re.sub(r"[-_.]+", "-", name).lower()


def measured_environment():
    """The interpreter and the installed distributions, read from this interpreter (importlib.metadata):
    measured where the training ran, not asserted. Canonical JSON, so one environment has one digest."""
    packages = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[canonical_name(name)] = dist.version
    doc = {
        "python": {"implementation": platform.python_implementation(), "version": platform.python_version()},
        "packages": [{"name": n, "version": v} for n, v in sorted(packages.items())],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def trainer_code():
    """The trainer's source files this process loaded (this script and every module imported from its
    directory), each with its sha256. The digest is sha256 of `sha256sum` output over them, sorted by
    path, with paths relative to the project root: `sha256sum trainers/a.py trainers/b.py | sha256sum`."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    files = {os.path.abspath(__file__)}
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f and os.path.isabs(f) and os.path.dirname(f) == here and f.endswith(".py") and os.path.isfile(f):
            files.add(os.path.abspath(f))
    listing = []
    for f in sorted(files, key=lambda x: os.path.relpath(x, root)):
        with open(f, "rb") as fh:
            listing.append({"path": os.path.relpath(f, root), "sha256": hashlib.sha256(fh.read()).hexdigest()})
    summary = "".join(f"{e['sha256']}  {e['path']}\n" for e in listing).encode()
    return {"files": listing, "digest": "sha256:" + hashlib.sha256(summary).hexdigest()}


def nvidia_smi(args, timeout=10):
    """nvidia-smi's answer, or None: absent, failing or slow (bounded) is no GPU record, never an error."""
    # The job's PATH may be narrower than the node's: also where drivers and device plugins put it.
    exe = shutil.which("nvidia-smi") or next(
        (f for f in ("/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi", "/usr/local/bin/nvidia-smi") if os.access(f, os.X_OK)), None
    )
    if not exe:
        return None
    try:
        got = subprocess.run([exe, *args], capture_output=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return got.stdout[:65536].decode("utf-8", "replace")


def gpu_environment():
    """The GPUs this job sees as the driver reports them (model, driver version, the driver's CUDA
    version), measured with nvidia-smi inside the job; {} when there is none (the record then says
    nothing about GPUs beyond torch's own view)."""
    listing = nvidia_smi(["--query-gpu=name,driver_version", "--format=csv,noheader"])
    if not listing:
        return {}
    gpus = []
    for line in listing.splitlines()[:64]:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and all(parts) and all(c.isprintable() for c in line):
            gpus.append({"name": parts[0][:200], "driver_version": parts[1][:50]})
    if not gpus:
        return {}
    record = {"gpu_devices": gpus, "gpu_model": gpus[0]["name"], "gpu_driver": gpus[0]["driver_version"]}
    header = nvidia_smi([]) or ""
    m = re.search(r"CUDA Version:\s*([0-9.]+)", header)
    if m:
        record["cuda_driver"] = m.group(1)
    return record


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--image-digest", default="")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        x, y = load_certified(args.data, args.schema)
    except CertifiedDataRefused as err:
        refuse(args.out, err)
    train_idx, test_idx = split(len(y), args.seed)
    mean = x[train_idx].mean(axis=0)
    std = x[train_idx].std(axis=0) + 1e-6

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            # Standardisation is part of the model: the served artifact takes raw features.
            self.register_buffer("mean", torch.tensor(mean))
            self.register_buffer("std", torch.tensor(std))
            self.net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

        def forward(self, inputs):
            return torch.sigmoid(self.net((inputs - self.mean) / self.std))

    model = Model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    xt = torch.tensor(x[train_idx], device=device)
    yt = torch.tensor(y[train_idx], device=device).unsqueeze(1)
    loss_fn = torch.nn.BCELoss()
    for epoch in range(args.epochs):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        if epoch % 100 == 0:
            print(json.dumps({"epoch": epoch, "loss": float(loss)}), flush=True)

    model = model.cpu().eval()
    with torch.no_grad():
        scores = model(torch.tensor(x[test_idx])).numpy().ravel()
        train_scores = model(torch.tensor(x[train_idx])).numpy().ravel()
    metrics = binary_metrics(y[test_idx], scores)
    features = [f["name"] for f in json.load(open(args.schema, encoding="utf-8"))["features"]]
    metrics["train_loss"] = float(loss)

    torch.onnx.export(
        model, torch.zeros(1, x.shape[1]), os.path.join(args.out, "model.onnx"),
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {0: "n"}, "output": {0: "n"}}, dynamo=False,
    )
    import onnx
    environment = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "device": device.type,
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "image_digest": args.image_digest or None,
        "seed": args.seed,
        "epochs": args.epochs,
        "features": int(x.shape[1]),
        "train_rows": int(len(train_idx)),
        "held_out_rows": int(len(test_idx)),
        "seconds": round(time.time() - started, 3),
        # Only when a GPU is present: the driver's view (torch's "gpu" and "cuda" above are its own).
        **gpu_environment(),
    }
    with open(os.path.join(args.out, "environment-measured.json"), "wb") as fh:
        fh.write(measured_environment())
    json.dump(trainer_code(), open(os.path.join(args.out, "trainer-code.json"), "w"), indent=2)
    json.dump(metrics, open(os.path.join(args.out, "metrics.json"), "w"), indent=2)
    with open(os.path.join(args.out, "training-distribution.json"), "w") as fh:
        json.dump(training_distribution(x[train_idx], features, train_scores), fh, sort_keys=True, separators=(",", ":"))
    json.dump(environment, open(os.path.join(args.out, "environment.json"), "w"), indent=2)
    tmp = os.path.join(args.out, "result.json.tmp")
    json.dump({"ok": True, "metrics": metrics, "environment": environment}, open(tmp, "w"))
    os.replace(tmp, os.path.join(args.out, "result.json"))
    print(json.dumps({"done": True, **metrics}), flush=True)


if __name__ == "__main__":
    main()
