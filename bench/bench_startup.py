"""Start-up time of the CLI: `xltune --version`, `xltune --help`, `xltune run --help`, each run N times in fresh
processes, for this tree and a baseline commit measured in the same run (its `src/` exported with `git archive`).
Prints a table with the ratio baseline / this tree and appends it to bench/RESULTS.md.

  python bench/bench_startup.py                      # baseline c193800: main before the imports were made lazy
  python bench/bench_startup.py --baseline main --repeat 20 --no-record

Each process does what the installed console script does (`from xltune.cli import entry; entry()`), with
PYTHONPATH set to the tree's src/; one untimed warm-up per (tree, command) fills the file cache first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BASELINE = "c193800"  # main before issue 15's lazy imports (every command imported torch at start-up)
COMMANDS = (["--version"], ["--help"], ["run", "--help"])
TARGET_S = 0.5  # issue 15: --help / --version start in under 0.5 s
CONSOLE = "import sys; sys.argv = ['xltune', *sys.argv[1:]]; from xltune.cli import entry; entry()"


def export_src(ref: str, dest: Path) -> Path:
    """The tree's src/ at ``ref`` (a commit, branch or tag of this repository) under ``dest``."""
    try:
        data = subprocess.run(["git", "-C", str(common.ROOT), "archive", ref, "src"], check=True,
                              capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"--baseline {ref}: git archive failed ({e.stderr.decode().strip()}); give a commit of "
                         "this repository") from None
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def time_command(src: Path, args: list[str], repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-c", CONSOLE, *args]
    times = []
    for i in range(repeat + 1):
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} with {src}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
        if i:  # the first is a warm-up
            times.append(elapsed)
    return times


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=BASELINE, help=f"git ref of the baseline (default {BASELINE})")
    p.add_argument("--repeat", type=int, default=10, help="timed runs per command and tree (default 10)")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        trees = {f"baseline {args.baseline}": export_src(args.baseline, Path(tmp)),
                 "this tree": common.ROOT / "src"}
        # interleave the trees per command so that a load change on the machine hits both alike
        times = {(t, i): [] for t in trees for i in range(len(COMMANDS))}
        for i, cmd in enumerate(COMMANDS):
            for name, src in trees.items():
                times[name, i] = time_command(src, cmd, args.repeat)
    base, this = list(trees)
    rows = []
    for i, cmd in enumerate(COMMANDS):
        b, t = statistics.median(times[base, i]), statistics.median(times[this, i])
        rows.append([f"`xltune {' '.join(cmd)}`", common.fmt(b, 3), common.fmt(min(times[base, i]), 3),
                     common.fmt(t, 3), common.fmt(min(times[this, i]), 3), f"{b / t:.1f}x",
                     "yes" if t < TARGET_S else "NO"])
    table = common.Table(
        f"start-up — {args.repeat} runs per command, fresh processes",
        ["command", f"{base} median s", "min s", "this tree median s", "min s", "ratio baseline / this",
         f"< {TARGET_S} s"], rows,
        [f"python {sys.version.split()[0]}; each run = `python -c \"from xltune.cli import entry; entry()\"` with "
         "PYTHONPATH=<tree>/src (what the console script runs); one untimed warm-up per command and tree",
         "a shared 2-core machine: medians move by tens of percent with its load; the ratio is measured in one run"])
    import torch

    common.publish(table, torch.device("cpu"), "bench_startup.py", argv, record=not args.no_record)


if __name__ == "__main__":
    main()
