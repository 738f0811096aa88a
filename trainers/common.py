"""Shared by the trainer and the evaluator: the numeric rule, reading a certified CSV in bounded
memory, the deterministic split and the metrics."""
import csv
import json
import math
import operator
import os
import re
import sys

import numpy as np

# The one numeric rule, the same as the certifier's (src/datasets/numbers.ts); both are checked
# against test/vectors/numbers.json. ASCII digits only: Python's \d and float() accept other scripts.
DECIMAL_LITERAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_HEX = re.compile(r"[+-]?0[xX]")
# re.ASCII: without it IGNORECASE folds 'ı' to 'i', which JavaScript's /i does not.
_NOT_FINITE = re.compile(r"[+-]?(inf|infinity|nan)", re.IGNORECASE | re.ASCII)
_SPACE = " \t\r\n"

# Rows are read this many at a time: a chunk's cells are the only Python objects alive at once.
CHUNK_ROWS = 16384


class CertifiedDataRefused(Exception):
    """The certified file breaks the rule it was certified under: refuse, never guess. The message
    names the line, column and reason, never the cell's contents."""


def parse_number(cell):
    """Returns (value, None) for a number, (None, reason) otherwise; reasons are checked in order."""
    if cell == "":
        return None, "empty"
    if DECIMAL_LITERAL.fullmatch(cell):
        value = float(cell)
        return (value, None) if math.isfinite(value) else (None, "overflow")
    if cell[0] in _SPACE or cell[-1] in _SPACE:
        return None, "whitespace"
    if _HEX.match(cell):
        return None, "hexadecimal"
    if _NOT_FINITE.fullmatch(cell):
        return None, "not-finite"
    if "_" in cell:
        return None, "digit-separator"
    return None, "not-decimal"


def load_schema(schema_path):
    with open(schema_path, encoding="utf-8") as f:
        return json.load(f)


# The feature derivations this trainer applies, as a schema declares them (src/datasets/schema.ts):
# standardisation of every feature, fitted on the training split, built into the exported model.
SUPPORTED_TRANSFORMS = {"standardize"}


def check_derivations(schema):
    """Refuses a schema whose declared derivations are not what this trainer applies: the manifest
    hashes the declaration, so it must describe the model that is trained."""
    declared = schema.get("derivations")
    if declared is None:
        return
    features = [f["name"] for f in schema["features"]]
    for d in declared:
        if d.get("transform") not in SUPPORTED_TRANSFORMS or d.get("fittedOn") != "training-split":
            raise CertifiedDataRefused(f"derivation {d.get('output')!r}: this trainer applies only standardize fitted on the training split")
    covered = [i for d in declared for i in d.get("inputs", [])]
    if sorted(covered) != sorted(features):
        raise CertifiedDataRefused("the declared derivations must standardize every feature exactly once (this trainer standardizes them all)")


def load_certified(csv_path, schema_path):
    """Reads a certified CSV into float32 features and 0/1 labels, CHUNK_ROWS rows at a time (no
    per-row dicts: a 200 MB file stays a few hundred MB in memory). Any cell that breaks the numeric
    rule or the schema raises CertifiedDataRefused."""
    schema = load_schema(schema_path)
    check_derivations(schema)
    features = [f["name"] for f in schema["features"]]
    label = schema["label"]
    values = set(label["values"])
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise CertifiedDataRefused("the certified file is empty")
        expected = features + [label["column"]]
        if sorted(header) != sorted(expected) or len(set(header)) != len(header):
            raise CertifiedDataRefused(f"header does not match the schema: expected the {len(expected)} columns {', '.join(expected)}")
        width = len(header)
        feature_idx = [header.index(c) for c in features]
        take = operator.itemgetter(*feature_idx)
        label_idx = header.index(label["column"])
        xs, ys = [], []
        chunk, lines = [], []
        try:
            for row in reader:
                chunk.append(row)
                lines.append(reader.line_num)
                if len(chunk) == CHUNK_ROWS:
                    _convert(chunk, lines, width, take, label_idx, label, values, features, xs, ys)
                    chunk, lines = [], []
        except csv.Error as err:
            raise CertifiedDataRefused(f"line {reader.line_num}: malformed CSV ({err.__class__.__name__})")
        if chunk:
            _convert(chunk, lines, width, take, label_idx, label, values, features, xs, ys)
    if not xs:
        raise CertifiedDataRefused("the certified file has no rows")
    x = np.concatenate(xs).reshape(-1, len(features))
    y = np.concatenate(ys)
    return x, y


def _convert(chunk, lines, width, take, label_idx, label, values, features, xs, ys):
    flat = []
    for row, line in zip(chunk, lines):
        if len(row) != width:
            raise CertifiedDataRefused(f"line {line}: expected {width} fields, found {len(row)}")
        cells = take(row)
        flat.extend(cells if isinstance(cells, tuple) else (cells,))
    if not all(map(DECIMAL_LITERAL.fullmatch, flat)):
        _refuse_first(flat, lines, features)
    numbers = np.array(list(map(float, flat)), dtype=np.float64)
    if not np.all(np.isfinite(numbers)):
        _refuse_first(flat, lines, features)
    xs.append(numbers.astype(np.float32))
    labels = [row[label_idx] for row in chunk]
    for i, v in enumerate(labels):
        if v not in values:
            raise CertifiedDataRefused(f"line {lines[i]}: {label['column']} is not one of {', '.join(sorted(values))}")
    ys.append(np.fromiter((v == label["positive"] for v in labels), dtype=np.float32, count=len(labels)))


def _refuse_first(flat, lines, features):
    n = len(features)
    for i, cell in enumerate(flat):
        _, reason = parse_number(cell)
        if reason:
            raise CertifiedDataRefused(f"line {lines[i // n]}: {features[i % n]} is not a number ({reason})")


def split(n, seed, held_out=0.2):
    """Held-out indices come from the seed alone, so the evaluator recomputes the same split."""
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - held_out)))
    return order[:cut], order[cut:]


def auc_score(truth, scores):
    """The probability that a random positive outranks a random negative, ties counting half, from
    ranks (O(n log n), O(n) memory). Exact: twice the Mann-Whitney U is an integer, so the result is
    bit-for-bit the pairwise count's (gt + eq/2) / (pos * neg)."""
    n_pos = int(np.sum(truth))
    n_neg = int(len(truth) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return 0.0
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts  # 0-based sorted position of each distinct score
    twice_rank = (2 * starts + counts + 1).astype(np.int64)  # 2 × the average 1-based rank of a tie group
    twice_u = int(np.sum(twice_rank[inverse.ravel()][truth])) - n_pos * (n_pos + 1)
    return float((twice_u / 2) / (n_pos * n_neg))


def binary_metrics(y_true, scores, threshold=0.5):
    pred = scores >= threshold
    truth = y_true >= 0.5
    tp = int(np.sum(pred & truth)); tn = int(np.sum(~pred & ~truth))
    fp = int(np.sum(pred & ~truth)); fn = int(np.sum(~pred & truth))
    return {
        "accuracy": (tp + tn) / max(1, len(y_true)),
        "recall": tp / max(1, tp + fn),
        "precision": tp / max(1, tp + fp),
        "auc": auc_score(truth, scores),
        "n": int(len(y_true)),
    }


# Score bins are fixed (tenths of P(positive)); feature bins are the training split's deciles.
SCORE_EDGES = [round(0.1 * i, 1) for i in range(1, 10)]


def bin_index(edges, values):
    """The bin of each value: how many edges are <= it (0 .. len(edges)). The gateway's binOf
    (src/monitoring/bins.ts) is the same rule, so a served value lands where a training value would."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="right")


def training_distribution(x, features, scores):
    """Per feature the decile edges of the training split and the share of its rows in each bin, and
    the distribution of the model's scores on the same rows: what monitoring compares served traffic
    with (PSI). Edges of a feature with many equal values may repeat: their bins are empty, and the
    proportions are counted with the same rule the gateway applies, so they stay consistent."""
    n = len(x)
    out = []
    for j, name in enumerate(features):
        col = x[:, j].astype(np.float64)
        edges = [float(e) for e in np.quantile(col, [i / 10 for i in range(1, 10)])]
        counts = np.bincount(bin_index(edges, col), minlength=len(edges) + 1)
        out.append({"name": name, "edges": edges, "proportions": [float(c) / n for c in counts]})
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.bincount(bin_index(SCORE_EDGES, scores), minlength=len(SCORE_EDGES) + 1)
    return {
        "version": 1,
        "split": "train",
        "rows": int(n),
        "features": out,
        "score": {
            "edges": SCORE_EDGES,
            "proportions": [float(c) / n for c in counts],
            "positiveRate": float(np.mean(scores >= 0.5)),
            "meanConfidence": float(np.mean(np.maximum(scores, 1 - scores))),
        },
    }


REFUSED_EXIT = 3


def refuse(out_dir, err):
    """Records why the data was refused (refused.json, read by the activity) and exits with
    REFUSED_EXIT: a refusal is final, unlike a crash, which the activity may retry."""
    with open(os.path.join(out_dir, "refused.json"), "w") as f:
        json.dump({"type": "CertifiedDataRefused", "message": str(err)}, f)
    print(f"refused: {err}", file=sys.stderr, flush=True)
    sys.exit(REFUSED_EXIT)
