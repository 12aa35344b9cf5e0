"""What one sweep job runs, wherever it runs: one cell (a resolved config, one seed) written to the job's own shard
store, never to the sweep's store (merged by the driver, :mod:`xltune.launchers`).

The same :func:`run_cell` runs in the sweep's own process (local, one worker), in a local worker process
(``python -m xltune.jobs SPEC``), and in a Slurm job (submitted through submitit as :class:`SlurmCell`). A job
that asks for several GPUs runs one data-parallel training: :func:`run_cell` relaunches itself under torch's
elastic launcher, one rank per GPU (as ``xltune run --processes N`` does); the main rank writes the shard.

A killed job leaves its run's resume checkpoint (``OUTPUT_DIR/RUN_ID/resume.pt``); the next job of that cell
(Slurm's requeue after preemption or a time-out, or the sweep's rerun) continues from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import submitit


@dataclass
class CellJob:
    config: dict  # the cell's resolved config, one seed (a YAML edited after submission changes no queued job)
    run_key: str
    store: str  # the sweep's store (the run's config keeps naming it)
    shard: str  # the store this job writes
    processes: int = 1  # data-parallel ranks (GPUs) for the run
    label: str = field(default="", compare=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CellJob:
        return cls(**json.loads(text))


def shard_dir(store: str | Path) -> Path:
    """Where the jobs of a sweep on ``store`` keep their shards and logs: ``STORE.shards/`` beside it."""
    store = Path(store)
    return store.with_name(store.name + ".shards")


def shard_path(store: str | Path, run_key: str) -> Path:
    """One shard per cell: a requeued or resubmitted job of the cell reopens it; no two jobs of one cell run at
    once (the driver holds the store's lock and knows the cells in flight)."""
    return shard_dir(store) / f"{run_key}.sqlite"


def run_cell(job: CellJob) -> str:
    """Run the cell into its shard; returns the run key."""
    if job.processes > 1 and "WORLD_SIZE" not in os.environ:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={job.processes}",
               "-m", "xltune.jobs", job.to_json()]
        subprocess.run(cmd, check=True)
        return job.run_key
    from .api import run_experiment
    from .config import ExperimentConfig
    from .errors import XLTuneError

    cfg = ExperimentConfig.from_dict(job.config, f"sweep cell {job.label or job.run_key}")
    key = cfg.run_key(cfg.seeds[0])
    if key != job.run_key:  # the driver would wait for a run this job never writes
        raise XLTuneError(f"this job's xltune gives run key {key} to the cell {job.label!r}, the sweep's gave "
                          f"{job.run_key}: the jobs run another xltune version than the sweep (install the same one)")
    run_experiment(cfg, into=job.shard)
    return job.run_key


class SlurmCell(submitit.helpers.Checkpointable):
    """The function a Slurm job runs. Checkpointable: on preemption or near its time limit (Slurm's USR2), submitit
    requeues the job with the same cell, which resumes from the run's resume checkpoint."""

    def __call__(self, job: CellJob) -> str:
        return run_cell(job)


def main(argv: list[str] | None = None) -> int:
    """``python -m xltune.jobs SPEC_JSON``: a local worker, or one rank of a data-parallel job."""
    from .cli import _close_process_group
    from .errors import XLTuneError

    argv = sys.argv[1:] if argv is None else argv
    ok = False
    try:
        run_cell(CellJob.from_json(argv[0]))
        ok = True
        return 0
    except XLTuneError as e:
        print(f"xltune: error: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        _close_process_group(wait=ok)


if __name__ == "__main__":
    sys.exit(main())
