"""Local sweep workers: wall time of one 4-cell sweep (finetune and deep_prompt x 2 seeds) run by one worker and by
two, against the baseline in the same run. Prints a table and appends it to bench/RESULTS.md.

  1 worker             `xltune sweep --workers 1`: the cells one after another in the sweep's process, torch's
                       threads on every core (the baseline)
  2 workers            `xltune sweep --workers 2`: two processes, each pinned to its share of the cores, torch's
                       threads sized to it (xltune.cpus)
  2 workers, unsized   what `--workers 2` did before: two `xltune run` processes at once, neither pinned, each with
                       a thread per core (oversubscribed: 2 x 2 threads on 2 cores)

The model is a tiny XGLM wide enough (hidden 256, 4 layers) that matmuls, not Python, take the time; data are
synthetic XNLI-like files (tests/tiny_data.py). Everything is built in a temporary folder.

  python bench/bench_sweep.py [--epochs 2] [--repeat 1] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
import common  # noqa: E402
from tiny_data import write_xnli_like  # noqa: E402

GRID = ["--grid", "method.name=finetune,deep_prompt", "--grid", "seeds=1,2"]
TEXT = "\n".join(f"{w} {v} {u}\t{u} {w}" for w in ("the", "le", "der", "el", "al", "na") for v in ("cat", "chat",
                 "Katze", "gato", "paka", "mbwa") for u in ("runs", "court", "läuft", "corre", "anakimbia")) + "\n"


def config(root: Path, model: Path, data: Path, name: str, epochs: int) -> Path:
    path = root / f"{name}.yaml"
    path.write_text("\n".join([
        f"model: {{name_or_path: {model}, head_dropout: 0.0}}",
        "method: {name: finetune}",
        f"task: {{name: xnli, data_dir: {data}}}",
        f"train: {{languages: [en], split: dev, shots: 32, epochs: {epochs}, lr: 1.0e-3, batch_size: 16, "
        "dev: {patience: 0}}",
        "eval: {split: test, languages: all}",
        "seeds: [1]",
        f"store: {root / name}.sqlite",
        f"output_dir: {root / name}-runs",
    ]) + "\n", encoding="utf-8")
    return path


def timed(cmds: list[list[str]], env: dict) -> float:
    """Wall seconds of the commands run at once (one command: the sweep; several: processes side by side)."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
    for p in procs:
        err = p.communicate()[1]
        if p.returncode != 0:
            raise SystemExit(f"failed: {' '.join(p.args)}\n{err[-2000:]}")
    return time.perf_counter() - t0


def threads_and_runs(store: Path) -> tuple[str, int]:
    import json

    conn = sqlite3.connect(str(store))
    envs = [json.loads(r[0]) for r in conn.execute("SELECT env_json FROM runs")]
    conn.close()
    return ",".join(sorted({str(e.get("threads", "?")) for e in envs})), len(envs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs per run (the run's length)")
    ap.add_argument("--repeat", type=int, default=1, help="measure each variant N times (median reported)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)

    from xltune.models.tiny import make_tiny_model
    from xltune.sweep import expand

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    xl = [sys.executable, "-m", "xltune.cli"]
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp)
        (root / "text.tsv").write_text(TEXT, encoding="utf-8")
        model = make_tiny_model("xglm", [root / "text.tsv"], root / "model", vocab_size=200, hidden=256, layers=4,
                                heads=4, seed=0)
        data = write_xnli_like(root / "xnli", n_dev=200, n_test=150)
        times: dict[str, list[float]] = {"1 worker": [], "2 workers": [], "2 workers, unsized": []}
        facts: dict[str, tuple[str, int]] = {}
        for r in range(args.repeat):
            for name in times:
                cfg = config(root, model, data, f"{name.replace(' ', '').replace(',', '-')}-{r}", args.epochs)
                if name == "2 workers, unsized":
                    cells = expand(cfg, GRID[1::2])
                    runs = [xl + ["run", str(cfg)] + [a for o in c.overrides for a in ("--set", o)] for c in cells]
                    seconds = timed(runs[:2], env) + timed(runs[2:], env)  # two at a time, as the pool did
                else:
                    seconds = timed([xl + ["sweep", str(cfg), *GRID, "--workers", name[0]]], env)
                times[name].append(seconds)
                facts[name] = threads_and_runs(root / f"{cfg.stem}.sqlite")
                print(f"  {name}: {seconds:.1f} s", file=sys.stderr)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    base = statistics.median(times["1 worker"])
    rows = []
    for name, ts in times.items():
        t = statistics.median(ts)
        threads, n = facts[name]
        rows.append([name, common.fmt(t, 1), f"{t / base:.2f}x", f"{base / t:.2f}x", threads, str(n)])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    table = common.Table(
        f"sweep — 4 cells (finetune, deep_prompt x 2 seeds), {args.epochs} epochs each, {cpus} CPUs",
        ["variant", "wall s", "time vs 1 worker", "speed vs 1 worker", "torch threads per run", "runs stored"],
        rows,
        [f"median of {args.repeat} measurement(s) per variant, all in this run; tiny XGLM hidden 256 x 4 layers, "
         "32 shots per class, batch 16, dev evaluation every epoch, 3 test languages x 150 pairs",
         "each worker process pays its own start (Python, torch, transformers: a few seconds per cell); the 1-worker "
         "sweep pays it once",
         f"1-minute load average {load_before:.1f} before, {load_after:.1f} after, on {cpus} CPUs (other work "
         "on this machine takes CPU from every variant: timings vary run to run)"])
    common.publish(table, torch.device("cpu"), "bench_sweep.py", argv, not args.no_record)


if __name__ == "__main__":
    main()
