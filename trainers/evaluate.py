"""Independent evaluation: runs the exported ONNX artifact (not the trainer's in-memory model) on the
held-out split and writes its metrics as one JSON object to --out (and prints it).

Memory stays bounded by the data itself: features are float32 arrays read in chunks, inference runs
in batches, and the AUC is rank-based (no pairwise matrix)."""
import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CertifiedDataRefused, binary_metrics, load_certified, refuse, split  # noqa: E402

BATCH = 65536


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", help="directory for metrics.json (and refused.json)")
    args = p.parse_args()
    out_dir = args.out or os.path.dirname(os.path.abspath(args.data))
    try:
        x, y = load_certified(args.data, args.schema)
    except CertifiedDataRefused as err:
        refuse(out_dir, err)
    _, test_idx = split(len(y), args.seed)
    x_test = x[test_idx]
    del x
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    scores = np.concatenate([session.run(None, {name: x_test[i:i + BATCH]})[0].ravel() for i in range(0, len(x_test), BATCH)])
    metrics = binary_metrics(y[test_idx], scores)
    if args.out:
        tmp = os.path.join(args.out, "metrics.json.tmp")
        with open(tmp, "w") as f:
            json.dump(metrics, f)
        os.replace(tmp, os.path.join(args.out, "metrics.json"))
    print(json.dumps(metrics), flush=True)


if __name__ == "__main__":
    main()
