"""GPU figures for the trainer, run directly on a machine with an accelerator (no Node there).

Runs trainers/train.py as the factory's job launcher would (same arguments, a scrubbed environment)
on a synthetic certified WDBC-shaped file, on CUDA and, in the same run on the same machine, on the
CPU (CUDA hidden). Two epoch counts per device separate the fixed cost (reading the CSV, export)
from the per-epoch cost: per_epoch = (t(hi) - t(lo)) / (hi - lo). Prints one JSON object and writes
it to --out.

  python3 bench/gpu/trainer-on-device.py --rows 1000000 --out /tmp/gpu.json
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WDBC = os.path.join(ROOT, "datasets", "breast-cancer-wisconsin")


def write_dataset(path, rows):
    """Cycles the real WDBC rows (as bench/synthetic.ts does) so the model scores sensibly."""
    with open(os.path.join(WDBC, "wdbc.csv"), encoding="utf-8") as f:
        header, *body = f.read().rstrip("\n").splitlines()
    with open(path, "w", encoding="utf-8") as out:
        out.write(header + "\n")
        for start in range(0, rows, len(body)):
            out.write("\n".join(body[: min(len(body), rows - start)]) + "\n")


def run_trainer(data, epochs, cuda, workdir):
    out = tempfile.mkdtemp(dir=workdir)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": workdir, "PYTHONHASHSEED": "0"}
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    for k in ("LD_LIBRARY_PATH", "PYTHONPATH"):
        if k in os.environ:
            env[k] = os.environ[k]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "trainers", "train.py"), "--data", data, "--schema", os.path.join(WDBC, "schema.json"),
         "--out", out, "--epochs", str(epochs)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:], "exit": proc.returncode}
    result = json.load(open(os.path.join(out, "result.json")))
    return {"wall_s": round(wall, 3), "device": result["environment"]["device"], "gpu": result["environment"]["gpu"],
            "auc": round(result["metrics"]["auc"], 4), "accuracy": round(result["metrics"]["accuracy"], 4)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--lo", type=int, default=300)
    p.add_argument("--hi", type=int, default=3000)
    p.add_argument("--cpu-hi", type=int, default=1000, help="the CPU's high epoch count (it is slow)")
    p.add_argument("--skip-cpu", action="store_true")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="gpu-bench-")
    data = os.path.join(work, "certified.csv")
    t0 = time.perf_counter()
    write_dataset(data, args.rows)
    import torch  # noqa: PLC0415 (after the data: report versions of what ran)

    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "cpus": os.cpu_count(),
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "rows": args.rows, "bytes": os.path.getsize(data), "write_s": round(time.perf_counter() - t0, 2), "runs": [],
    }
    # A first, discarded run warms the page cache and the CUDA driver: both later runs start equal.
    plan = [(True, args.lo), (True, args.lo), (True, args.hi)] + ([] if args.skip_cpu else [(False, args.lo), (False, args.cpu_hi)])
    for cuda, epochs in plan:
        if cuda and not torch.cuda.is_available():
            continue
        r = run_trainer(data, epochs, cuda, work)
        r.update({"cuda": cuda, "epochs": epochs})
        report["runs"].append(r)
        print(json.dumps(r), flush=True)
    by = {(r["cuda"], r["epochs"]): r.get("wall_s") for r in report["runs"]}  # the later of equal runs wins
    for cuda, hi in ((True, args.hi), (False, args.cpu_hi)):
        lo_t, hi_t = by.get((cuda, args.lo)), by.get((cuda, hi))
        if lo_t and hi_t:
            per_epoch = (hi_t - lo_t) / (hi - args.lo)
            report["cuda_per_epoch_ms" if cuda else "cpu_per_epoch_ms"] = round(per_epoch * 1000, 2)
            report["cuda_fixed_s" if cuda else "cpu_fixed_s"] = round(lo_t - per_epoch * args.lo, 2)
    if report.get("cuda_per_epoch_ms") and report.get("cpu_per_epoch_ms"):
        report["per_epoch_speedup_cuda_vs_cpu"] = round(report["cpu_per_epoch_ms"] / report["cuda_per_epoch_ms"], 1)
    print(json.dumps(report, indent=2))
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
