"""Sweeps on a real Slurm cluster: the single-node one of scripts/slurm-local.sh (CI starts it). Skipped, saying
why, only where no cluster answers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_scale import metrics, wait_for, write_config, xltune
from tiny_data import write_xnli_like
from xltune.jobs import shard_dir
from xltune.store import Store
from xltune.sweep import expand

pytestmark = pytest.mark.slow

# CPU jobs of one core each (the local cluster has no GPUs); a short time limit is enough for tiny runs
SLURM = ["--launcher", "slurm", "--gpus-per-job", "0", "--cpus-per-job", "1", "--time", "10"]


@pytest.fixture(scope="module")
def slurm():
    """A Slurm cluster that takes jobs, or a skip that says why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        pytest.skip("no Slurm here (sbatch/sinfo not on PATH); start a local one: sudo scripts/slurm-local.sh start")
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.skip("Slurm does not answer (sinfo timed out); sudo scripts/slurm-local.sh start")
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        why = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"node states {states}"
        pytest.skip(f"no Slurm node takes jobs ({why}); sudo scripts/slurm-local.sh start")


def sweep(cfg, *args, timeout=600) -> tuple[int, str]:
    p = xltune("sweep", str(cfg), *args)
    out = p.communicate(timeout=timeout)[0]
    return p.returncode, out


def run_keys(store) -> list[str]:
    with Store(store) as s:
        return [r["run_key"] for r in s.runs()]


def test_a_sweep_runs_as_one_job_array_and_every_run_is_stored_once(slurm, tiny_xglm_dir, tmp_path):
    data = write_xnli_like(tmp_path / "xnli")
    grid = ["--grid", "method.name=finetune,deep_prompt", "--grid", "seeds=1,2"]
    cfg = write_config(tmp_path / "s.yaml", tiny_xglm_dir, data, tmp_path / "s.sqlite", tmp_path / "rs")
    ref = write_config(tmp_path / "l.yaml", tiny_xglm_dir, data, tmp_path / "l.sqlite", tmp_path / "rl")

    rc, out = sweep(cfg, *grid, *SLURM, "--no-wait")
    assert rc == 0, out
    assert "sweep: 4 runs, 0 already in the store, 4 to run" in out
    assert "submitted 4 cell(s) as Slurm job array" in out and "Rerun this command" in out
    array = out.split("Slurm job array ")[1].split()[0]

    rc, out = sweep(cfg, *grid, *SLURM)  # the rerun waits for the jobs in flight: it submits nothing
    assert rc == 0, out
    assert ", 0 to run" in out and "submitted" not in out
    assert "sweep: 4/4 done, 0 running, 0 pending, 0 failed" in out
    logs = shard_dir(tmp_path / "s.sqlite") / "slurm-logs"
    assert sorted(p.name for p in logs.glob("*_log.out")) == [f"{array}_{i}_0_log.out" for i in range(4)]  # one array
    assert list(shard_dir(tmp_path / "s.sqlite").glob("*.sqlite")) == []  # every shard merged, then removed

    keys = run_keys(tmp_path / "s.sqlite")
    assert len(keys) == len(set(keys)) == 4
    rc, out = sweep(cfg, *grid, *SLURM)
    said = [line for line in out.splitlines() if line.startswith("sweep:")]
    assert rc == 0 and said == ["sweep: 4 runs, 4 already in the store, 0 to run"]  # nothing submitted or polled
    assert run_keys(tmp_path / "s.sqlite") == keys

    rc, out = sweep(ref, *grid)  # the same sweep on this machine, in one process
    assert rc == 0, out
    assert metrics(tmp_path / "s.sqlite") == metrics(tmp_path / "l.sqlite")


def test_cancelled_and_preempted_jobs_resume_with_the_metrics_of_an_uninterrupted_sweep(slurm, tiny_xglm_dir,
                                                                                       tmp_path):
    data = write_xnli_like(tmp_path / "xnli", n_dev=60)
    # two cells train long enough (150 epochs, no early stopping) for scancel to land mid-training
    grid = ["--grid", "train.epochs=2,150", "--grid", "seeds=1,2"]
    kw = dict(patience=0)
    cfg = write_config(tmp_path / "k.yaml", tiny_xglm_dir, data, tmp_path / "k.sqlite", tmp_path / "rk", **kw)
    ref = write_config(tmp_path / "c.yaml", tiny_xglm_dir, data, tmp_path / "c.sqlite", tmp_path / "rc", **kw)
    store = tmp_path / "k.sqlite"
    registry = shard_dir(store) / "slurm-jobs.json"

    long = [c.run_id for c in expand(cfg, grid[1::2]) if c.config.train.epochs == 150]
    p = xltune("sweep", str(cfg), *grid, *SLURM)
    checkpoints = lambda: [k for k in long if (tmp_path / "rk" / k / "resume.pt").exists()]  # noqa: E731
    assert wait_for(lambda: len(checkpoints()) == 2 and registry.exists(), proc=p), p.communicate()[0]
    jobs = json.loads(registry.read_text())
    run_key, preempted = long
    job_id = jobs[run_key]["job_id"]
    subprocess.run(["scancel", job_id], check=True)
    # the other one as Slurm preempts a job or warns of its time limit (USR2): submitit checkpoints and requeues it
    subprocess.run(["scancel", "--signal=USR2", jobs[preempted]["job_id"]], check=True)
    t0 = time.time()
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 2, out
    failed = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and f"job {job_id}: CANCELLED" in failed[0] and "; log: " in failed[0], out
    assert os.path.exists(failed[0].split("; log: ")[1])
    assert "sweep: 1 run(s) failed (logs above); rerun the sweep to retry them" in out
    assert (tmp_path / "rk" / run_key / "resume.pt").exists(), f"no checkpoint left {time.time() - t0:.0f} s after"
    assert run_key not in run_keys(store) and preempted in run_keys(store) and len(run_keys(store)) == 3
    requeued = Path(jobs[preempted]["log"]).with_suffix(".out").read_text()  # one log across the requeue
    assert "Requeued job" in requeued and "resumed from" in requeued

    rc, out = sweep(cfg, *grid, *SLURM)
    assert rc == 0, out
    assert "sweep: 4 runs, 3 already in the store, 1 to run" in out and "submitted 1 cell(s)" in out
    resumed = json.loads(registry.read_text()) if registry.exists() else {}
    assert resumed == {}  # the record of cells in flight is empty again
    logs = sorted((shard_dir(store) / "slurm-logs").glob("*_log.out"), key=os.path.getmtime)
    assert "resumed from" in logs[-1].read_text()  # the resubmitted job continued from the checkpoint

    keys = run_keys(store)
    assert len(keys) == len(set(keys)) == 4  # every run exactly once
    rc, out = sweep(ref, *grid, "--workers", "2")  # the same sweep, uninterrupted, in two local workers
    assert rc == 0, out
    assert metrics(store) == metrics(tmp_path / "c.sqlite")
