"""Shared by the trainer and the evaluator: reading a certified CSV and the deterministic split."""
import csv
import json

import numpy as np


def load_certified(csv_path, schema_path):
    schema = json.load(open(schema_path))
    features = [f["name"] for f in schema["features"]]
    label = schema["label"]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in features] for r in rows], dtype=np.float32)
    y = np.array([1.0 if r[label["column"]] == label["positive"] else 0.0 for r in rows], dtype=np.float32)
    return x, y


def split(n, seed, held_out=0.2):
    """Held-out indices come from the seed alone, so the evaluator recomputes the same split."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - held_out)))
    return order[:cut], order[cut:]


def binary_metrics(y_true, scores, threshold=0.5):
    pred = scores >= threshold
    truth = y_true >= 0.5
    tp = int(np.sum(pred & truth)); tn = int(np.sum(~pred & ~truth))
    fp = int(np.sum(pred & ~truth)); fn = int(np.sum(~pred & truth))
    # AUC as the probability that a random positive outranks a random negative (ties count half).
    pos, neg = scores[truth], scores[~truth]
    auc = float((np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])) / max(1, len(pos) * len(neg)))
    return {
        "accuracy": (tp + tn) / max(1, len(y_true)),
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
        "auc": auc,
        "n": int(len(y_true)),
    }
