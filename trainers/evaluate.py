"""Independent evaluation: runs the exported ONNX artifact (not the trainer's in-memory model) on the
held-out split and prints its metrics as one JSON object."""
import argparse
import json
import os
import sys

import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import binary_metrics, load_certified, split  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    x, y = load_certified(args.data, args.schema)
    _, test_idx = split(len(y), args.seed)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    scores = session.run(None, {session.get_inputs()[0].name: x[test_idx]})[0].ravel()
    print(json.dumps(binary_metrics(y[test_idx], scores)))


if __name__ == "__main__":
    main()
