"""Sweep launchers on this machine: every cell goes through its own shard, merged into the store; threads sized to
the CPUs a run may use; the Slurm options' checks. (Against a real Slurm: tests/test_slurm.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from test_scale import metrics, write_config
from tiny_data import write_xnli_like
from xltune.cli import main as cli
from xltune.errors import XLTuneError
from xltune.jobs import CellJob, run_cell, shard_dir, shard_path
from xltune.launchers import _cpu_share, slurm_minutes
from xltune.store import Store
from xltune.sweep import expand, run_sweep


CASES = [  # (environment, CPU affinity) -> (usable CPUs, torch threads after size_threads); n = this machine's CPUs
    ({}, None, ("n", "n")),
    ({}, {0}, (1, 1)),  # a local worker pinned to one core
    ({"SLURM_CPUS_PER_TASK": "1"}, None, (1, 1)),  # a Slurm job whose cores are not bound
    ({"SLURM_CPUS_ON_NODE": "1"}, None, (1, 1)),
    ({"LOCAL_WORLD_SIZE": "n"}, None, (1, 1)),  # the ranks of one data-parallel run share the machine
    ({"OMP_NUM_THREADS": "2", "SLURM_CPUS_PER_TASK": "1"}, None, (1, 2)),  # the user's explicit choice stays
]
CHILD = """
import json, os, sys, torch
from xltune.cpus import size_threads, usable_cpus
out, every = [], os.sched_getaffinity(0)
for env, affinity in json.loads(sys.argv[1]):
    for k in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE", "LOCAL_WORLD_SIZE", "OMP_NUM_THREADS"):
        os.environ.pop(k, None)
    os.environ.update(env)
    os.sched_setaffinity(0, affinity or every)
    torch.set_num_threads(2)
    out.append([usable_cpus(), size_threads()])
print(json.dumps(out))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 CPUs and sched_getaffinity")
def test_threads_follow_the_cpus_a_run_may_use():
    import json

    n = len(os.sched_getaffinity(0))
    fill = lambda v: n if v == "n" else v  # noqa: E731
    cases = [({k: str(fill(v)) for k, v in env.items()}, sorted(aff) if aff else None) for env, aff, _ in CASES]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], env=base, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == [[fill(a), fill(b)] for _, _, (a, b) in CASES]


def test_cpu_shares_of_local_workers():
    assert _cpu_share([0, 1], 0, 2) == [0] and _cpu_share([0, 1], 1, 2) == [1]
    assert _cpu_share([0, 1, 2, 3], 1, 2) == [2, 3]
    assert [_cpu_share([0, 1], s, 3) for s in range(3)] == [[0], [1], [0]]  # more workers than CPUs: one each
    assert _cpu_share([0, 1], 0, 1) == [0, 1]


@pytest.mark.parametrize("text, minutes", [("90", 90), ("2:00:00", 120), ("1:30", 2), ("0:10", 1), ("1-12", 2160),
                                           ("1-00:30", 1470), ("1-00:00:30", 1441)])
def test_slurm_time_formats(text, minutes):
    assert slurm_minutes(text) == minutes


@pytest.mark.parametrize("args, message", [
    (["--partition", "gpu"], "--partition: only with --launcher slurm"),
    (["--no-wait"], "--no-wait: only with --launcher slurm"),
    (["--launcher", "slurm", "--workers", "2"], "--workers is for --launcher local"),
    (["--launcher", "slurm", "--slurm", "account"], "--slurm expects KEY=VALUE"),
    (["--launcher", "slurm", "--time", "2h"], "--time '2h': expected Slurm's format"),
    (["--launcher", "slurm", "--gpus-per-job", "-1"], "--gpus-per-job -1: expected a number of at least 0"),
    (["--workers", "0"], "--workers 0: expected at least 1"),
])
def test_sweep_options_errors_are_one_line(tmp_path, capsys, args, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name_or_path: m}\nmethod: {name: finetune}\ntask: {name: xnli, data_dir: d}\n")
    assert cli(["sweep", str(cfg), "--grid", "seeds=1,2", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xltune: error: ") and message in err


def test_slurm_launcher_without_slurm_says_how_to_get_one(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name_or_path: m}\nmethod: {name: finetune}\ntask: {name: xnli, data_dir: d}\n"
                   f"store: {tmp_path / 's.sqlite'}\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no squeue
    from xltune.launchers import SlurmOptions

    with pytest.raises(XLTuneError, match=r"no sbatch/squeue on PATH .*scripts/slurm-local.sh start"):
        run_sweep(cfg, ["seeds=1,2"], launcher="slurm", slurm=SlurmOptions(gpus_per_job=0), log=lambda *_: None)


def test_a_sweep_merges_shards_left_by_earlier_jobs_then_runs_the_rest(tiny_xglm_dir, tmp_path):
    """A job that wrote its shard but whose driver died before merging it: the next sweep merges it, runs only what
    is missing, and leaves no shard behind."""
    data = write_xnli_like(tmp_path / "xnli")
    cfg = write_config(tmp_path / "c.yaml", tiny_xglm_dir, data, tmp_path / "s.sqlite", tmp_path / "out")
    cells = expand(cfg, ["seeds=1,2"])
    c = cells[0]
    run_cell(CellJob(c.config.to_dict(), c.run_id, c.config.store, str(shard_path(c.config.store, c.run_id))))
    assert shard_path(c.config.store, c.run_id).exists() and not (tmp_path / "s.sqlite").exists()
    lines = []
    run_sweep(cfg, ["seeds=1,2"], log=lines.append)
    assert "sweep: 2 runs, 1 already in the store (1 merged from shards of earlier jobs), 1 to run" in lines
    with Store(tmp_path / "s.sqlite") as s:
        assert sorted(r["run_key"] for r in s.runs()) == sorted(x.run_id for x in cells)
    assert list(shard_dir(tmp_path / "s.sqlite").glob("*.sqlite")) == []


@pytest.mark.slow
def test_a_job_with_several_processes_runs_one_data_parallel_training(tiny_xglm_dir, tmp_path):
    """What a Slurm job asking for N GPUs runs (--gpus-per-job N): one training over N ranks under torch's elastic
    launcher, written to the job's shard by the main rank. Here on CPU (gloo): the plumbing, the same metrics."""
    data = write_xnli_like(tmp_path / "xnli", n_test=13)
    cfg = write_config(tmp_path / "c.yaml", tiny_xglm_dir, data, tmp_path / "s.sqlite", tmp_path / "out")
    (c,) = expand(cfg, [])
    for processes, store in ((1, tmp_path / "one.sqlite"), (2, tmp_path / "two.sqlite")):
        env_before = dict(os.environ)
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            run_cell(CellJob(c.config.to_dict(), c.run_id, c.config.store, str(store), processes=processes))
        finally:
            os.environ.clear()
            os.environ.update(env_before)
    one, two = metrics(tmp_path / "one.sqlite"), metrics(tmp_path / "two.sqlite")
    assert len(one) == 3 and set(one) == set(two)
    assert all(two[k] == pytest.approx(one[k], abs=1e-9) for k in one)
    with Store(tmp_path / "two.sqlite") as s:
        (run,) = s.runs()
    assert run["config"]["store"] == str(tmp_path / "s.sqlite")  # the shard's run still names the sweep's store


def test_a_job_whose_xltune_gives_another_run_key_refuses_to_run(tmp_path):
    """Jobs on a cluster may import another xltune than the sweep's: their runs would never be the cells the driver
    waits for, so the job stops at once and says so."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name_or_path: m}\nmethod: {name: finetune}\ntask: {name: xnli, data_dir: d}\n")
    (c,) = expand(cfg, [])
    job = CellJob(c.config.to_dict(), "0123456789abcdef", c.config.store, str(tmp_path / "shard.sqlite"), label="x")
    with pytest.raises(XLTuneError, match=f"gives run key {c.run_id} to the cell 'x', the sweep's gave 0123456789ab"):
        run_cell(job)
    assert not (tmp_path / "shard.sqlite").exists()


def test_an_unreadable_shard_is_set_aside_and_its_run_redone(tiny_xglm_dir, tmp_path):
    """A job killed while it created its shard leaves an empty file: the next sweep moves it aside (saying so) and
    runs that cell again, instead of failing on it every time."""
    data = write_xnli_like(tmp_path / "xnli")
    cfg = write_config(tmp_path / "c.yaml", tiny_xglm_dir, data, tmp_path / "s.sqlite", tmp_path / "out")
    cells = expand(cfg, ["seeds=1"])
    shard = shard_path(cells[0].config.store, cells[0].run_id)
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_bytes(b"")
    lines = []
    run_sweep(cfg, ["seeds=1"], log=lines.append)
    assert any(f"shard {shard.name} cannot be merged" in line and "will be redone" in line for line in lines)
    assert shard.with_suffix(".bad").exists() and not shard.exists()
    with Store(tmp_path / "s.sqlite") as s:
        assert [r["run_key"] for r in s.runs()] == [cells[0].run_id]
