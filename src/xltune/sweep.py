"""Sweeps: a grid of config overrides expanded into runs, each keyed by the hash of its resolved config and seed.

A sweep is one config times a product grid, or a *plan*: a YAML file with a top-level ``sweep:`` list of
entries, each its own config, overrides and grid (so a learning rate can be tied to a method, or an epoch count to
a data regime; configs/paper/study.yaml)::

    sweep:
      - config: deep_prompt.yaml          # relative to the plan file
        set: [train.shots=all]            # optional overrides for this entry
        grid: {task.name: [xnli, pawsx], seeds: [1, 2, 3]}

Finished runs (already in the store) are skipped, so a killed sweep is resumed by running it again; each run is
written in one transaction, so nothing is half-written or counted twice. Where the cells run (this process, local
worker processes, a Slurm job array) and how their results reach the store (a shard per job, merged) is
:mod:`xltune.launchers`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import ExperimentConfig, load_config, rebase_override, resolve_paths
from .errors import XLTuneError, unknown_name


@dataclass
class Cell:
    overrides: list[str]  # --set items, seeds last
    config: ExperimentConfig
    seed: int
    run_id: str
    done: bool = False

    def label(self) -> str:
        return " ".join(self.overrides)


def parse_grid(items: list[str]) -> list[tuple[str, list]]:
    """``key=v1,v2`` -> (key, [v1, v2]) with values parsed as YAML (numbers, booleans, names)."""
    grid = []
    for item in items:
        if "=" not in item:
            raise XLTuneError(f"--grid expects key=v1,v2,..., got {item!r}")
        key, raw = item.split("=", 1)
        values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
        if not values:
            raise XLTuneError(f"--grid {key}: no values")
        grid.append((key.strip(), values))
    return grid


def expand(config_path: str | Path, grid_items: list[str], overrides: list[str] | None = None) -> list[Cell]:
    """Every combination of the grid, one cell per (combination, seed)."""
    overrides = list(overrides or [])
    grid = parse_grid(grid_items)
    seed_values = None
    for key, values in grid:
        if key == "seeds":
            seed_values = [int(v) for v in values]
    grid = [(k, v) for k, v in grid if k != "seeds"]
    cells = []
    keys = [k for k, _ in grid]
    for combo in itertools.product(*[v for _, v in grid]) if grid else [()]:
        sets = overrides + [f"{k}={_fmt(v)}" for k, v in zip(keys, combo)]
        base = load_config(config_path, sets)
        for seed in seed_values or base.seeds:
            cfg = load_config(config_path, sets + [f"seeds=[{seed}]"])
            cfg = resolve_paths(cfg)
            cells.append(Cell(sets + [f"seeds=[{seed}]"], cfg, seed, cfg.run_key(seed)))
    ids = [c.run_id for c in cells]
    if len(set(ids)) != len(ids):
        raise XLTuneError("the grid produces the same run twice (a grid key that does not change the config?)")
    return cells


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
        # paths in the plan's own overrides are relative to the plan file, as a config file's are to it
        base = path.resolve().parent
        items = [f"{k}={','.join(_value(rebase_override(f'{k}={_fmt(v)}', base, loc)) for v in _list(vals))}"
                 for k, vals in grid.items()]
        sets = [rebase_override(str(s), base, loc) for s in e.get("set") or []]
        out.append(PlanEntry((path.parent / e["config"]).resolve(), sets, items))
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


def run_sweep(config_path: str | Path, grid_items: list[str], *, overrides: list[str] | None = None,
              launcher: str = "local", workers: int = 1, slurm=None, wait: bool = True, dry_run: bool = False,
              log=print) -> list[Cell]:
    """Expand the sweep and run what is not in the store yet, through ``launcher`` ("local" or "slurm", with
    :class:`launchers.SlurmOptions`); every run goes through a shard merged into the store (:mod:`xltune.launchers`).
    """
    if is_plan(config_path):
        if grid_items:
            raise XLTuneError(f"{config_path} is a sweep plan: its grids are in the file (no --grid)")
        cells = expand_plan(config_path, overrides)
    else:
        cells = expand(config_path, grid_items, overrides)
    from .launchers import mark_done, sweep_cells

    if dry_run:
        mark_done(cells)
        todo = [c for c in cells if not c.done]
        log(f"sweep: {len(cells)} runs, {len(cells) - len(todo)} already in the store, {len(todo)} to run")
        checked: dict[str, str] = {}
        for c in cells:  # every distinct data set the sweep reads, read once
            t, tr, ev = c.config.task, c.config.train, c.config.eval
            key = repr((t, tr.languages, tr.split, tr.shots, tr.dev.policy, tr.dev.split, ev.split, ev.languages,
                        ev.max_examples))
            if key not in checked:
                from .runs.prepare import check_data

                checked[key] = check_data(c.config)
                log(f"  data  {checked[key]}")
        for i, c in enumerate(cells):
            log(f"  {i:>4}  {'done   ' if c.done else 'pending'}  {c.run_id}  {c.config.method.name:<11} "
                f"{c.config.objective_tag:<8} {c.config.task.name:<6} K={c.config.train.shots!s:<4} seed {c.seed}"
                f"  {c.label()}")
        return cells
    sweep_cells(cells, launcher=launcher, workers=workers, slurm=slurm, wait=wait, log=log,
                after=lambda: average_seeds(cells, log))
    return cells


def average_seeds(cells: list[Cell], log=print) -> None:
    """train.dev.policy run_average: a sweep runs each seed as its own job, so the average of a variant's seeds is
    made here, once all of them are in the store (from their saved logits; nothing trains again)."""
    import copy

    from . import variants
    from .launchers import mark_done
    from .runs.pipeline import run_experiment

    mark_done(cells)
    groups: dict[tuple[str, str], list[Cell]] = {}
    for c in cells:
        if c.config.train.dev.policy == "run_average":
            groups.setdefault((c.config.store, variants.variant_id(c.config)), []).append(c)
    for group in groups.values():
        if len(group) < 2 or not all(c.done for c in group):
            continue
        cfg = copy.deepcopy(group[0].config)
        cfg.seeds = sorted(c.seed for c in group)
        run_experiment(cfg, log=log)


def _list(v) -> list:
    return v if isinstance(v, list) else [v]


def _value(item: str) -> str:
    return item.split("=", 1)[1]


def _fmt(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
