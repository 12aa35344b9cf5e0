"""A sweep plan: several (config, grid, overrides) entries in one YAML file, run as one sweep.

``xltune sweep`` multiplies one config by a product grid, which cannot tie a learning rate to a method or an epoch
count to a data regime. A plan lists the entries that can (configs/paper/study.yaml)::

    sweep:
      - config: deep_prompt.yaml          # relative to the plan file
        set: [train.shots=all]            # optional overrides for this entry
        grid: {task.name: [xnli, pawsx], seeds: [1, 2, 3]}

Each entry is expanded with :func:`xltune.sweep.expand` (so run ids, resumption and dry runs are the sweep's own).
Run it with ``python -m xltune.claims.plan PLAN [--dry-run] [--set k=v]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..errors import XLTuneError, unknown_name
from ..sweep import Cell, _fmt, expand, mark_done

ENTRY_KEYS = ("config", "set", "grid")


@dataclass
class PlanEntry:
    config: Path
    overrides: list[str]
    grid: list[str]  # --grid items, key=v1,v2


def is_plan(path: str | Path) -> bool:
    """True when the YAML file is a plan (a top-level ``sweep:`` list) rather than an experiment config."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "sweep" in data


def load_plan(path: str | Path) -> list[PlanEntry]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise XLTuneError(f"cannot read sweep plan {path}: {e.strerror}") from None
    entries = data.get("sweep") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise XLTuneError(f"{path}: expected a top-level 'sweep:' list of {{config, set, grid}} entries")
    out = []
    for i, e in enumerate(entries):
        loc = f"{path}: sweep[{i}]"
        if not isinstance(e, dict) or "config" not in e:
            raise XLTuneError(f"{loc}: each entry needs 'config' (a config file relative to the plan)")
        for k in e:
            if k not in ENTRY_KEYS:
                raise unknown_name("plan entry key", k, ENTRY_KEYS, loc)
        grid = e.get("grid") or {}
        if not isinstance(grid, dict):
            raise XLTuneError(f"{loc}: grid must map keys to lists of values, got {grid!r}")
        items = [f"{k}={','.join(_fmt(v) for v in (vals if isinstance(vals, list) else [vals]))}"
                 for k, vals in grid.items()]
        out.append(PlanEntry((path.parent / e["config"]).resolve(), [str(s) for s in e.get("set") or []], items))
    return out


def expand_plan(path: str | Path, overrides: list[str] | None = None) -> list[Cell]:
    """Every run of every entry (``overrides`` go first, then the entry's own ``set``, then its grid)."""
    cells: list[Cell] = []
    for entry in load_plan(path):
        cells.extend(expand(entry.config, entry.grid, list(overrides or []) + entry.overrides))
    ids = [c.run_id for c in cells]
    if len(set(ids)) != len(ids):
        raise XLTuneError(f"{path}: two entries produce the same run")
    return cells


def run_plan(path: str | Path, *, overrides: list[str] | None = None, dry_run: bool = False, log=print) -> list[Cell]:
    """Run every pending cell of the plan in order; finished runs (already in their store) are skipped."""
    cells = expand_plan(path, overrides)
    mark_done(cells)
    todo = [c for c in cells if not c.done]
    log(f"plan: {len(cells)} runs, {len(cells) - len(todo)} already in the store, {len(todo)} to run")
    if dry_run:
        for i, c in enumerate(cells):
            log(f"  {i:>4}  {'done   ' if c.done else 'pending'}  {c.run_id}  {c.config.method.name:<11} "
                f"{c.config.objective.tag():<8} {c.config.task.name:<6} K={c.config.train.shots!s:<4} seed {c.seed}")
        return cells
    from ..api import run_experiment

    for i, c in enumerate(todo):
        log(f"plan: [{i + 1}/{len(todo)}] {c.label()}")
        run_experiment(c.config, log=log)
        c.done = True
    return cells


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m xltune.claims.plan", description=__doc__.split("\n\n")[0])
    p.add_argument("plan")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    try:
        run_plan(args.plan, overrides=args.overrides, dry_run=args.dry_run)
    except XLTuneError as e:
        print(f"xltune: error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
