"""Where a sweep's cells run, and the one path their results take into the sweep's store.

Every cell runs as a job (:mod:`xltune.jobs`) that writes its own shard store in ``STORE.shards/``; the driver (the
``xltune sweep`` process) merges each job's shard into the store once the job has ended (:meth:`Store.merge`:
idempotent; a shard that disagrees with the store is reported and kept out) and prints progress. So no two
machines ever write one SQLite file (unsafe over network file systems), and a rerun merges what earlier jobs left,
then runs only what is missing. Launchers:

- ``local``: one worker runs the cells in this process; N workers are N processes, each pinned to its share of
  the CPUs (and one GPU each where there are several) and ended with the driver.
- ``slurm``: the cells become one job array, submitted through submitit (:class:`SlurmOptions`). Jobs outlive the
  driver: ``--no-wait`` submits and returns; the cells in flight are recorded in ``STORE.shards/slurm-jobs.json``,
  so a rerun waits for them instead of submitting them twice.

One driver per store at a time (a lock file in ``STORE.shards/``).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import XLTuneError
from .jobs import CellJob, SlurmCell, run_cell, shard_dir, shard_path
from .store import Store


@dataclass
class SlurmOptions:
    partition: str | None = None
    gpus_per_job: int = 1  # > 1: one data-parallel training over the job's GPUs
    cpus_per_job: int | None = None  # None: the cluster's default
    time: str = "2:00:00"  # Slurm's formats: MM, HH:MM:SS, D-HH:MM, ...
    array_parallelism: int | None = None  # at most this many jobs of the array at once
    extra: dict[str, str] = field(default_factory=dict)  # any other sbatch option, e.g. account, qos, mem


@dataclass
class Tracked:
    """A job of this sweep, as the driver sees it."""

    job: CellJob
    state: str = "pending"  # pending | running | finished
    job_id: str = ""  # Slurm's job id (array_task), or the local worker's pid
    detail: str = ""  # how it ended: Slurm's state or the exit status
    log: str = ""  # the job's log file
    collected: bool = False  # its shard has been merged


def sweep_cells(cells, *, launcher: str = "local", workers: int = 1, slurm: SlurmOptions | None = None,
                wait: bool = True, log=print, after=None) -> None:
    """Run the cells that are not in their store yet (see the module docstring). ``cells``: :class:`sweep.Cell`."""
    if launcher not in ("local", "slurm"):
        raise XLTuneError(f"unknown launcher {launcher!r}; valid: local, slurm")
    stores = sorted({c.config.store for c in cells})
    runner = Local(workers, log) if launcher == "local" else Slurm(slurm or SlurmOptions(), log)
    with _driver_locks(stores):
        wanted = {c.run_id for c in cells}
        flying = runner.adopt(stores)  # jobs of an earlier submission, still queued or running
        busy = {t.job.run_key for t in flying}
        merged = sum(_collect(store, busy, log) for store in stores)
        mark_done(cells)
        todo = [c for c in cells if not c.done and c.run_id not in busy]
        flying = [t for t in flying if t.job.run_key in wanted]
        n_done = sum(c.done for c in cells)
        log(f"sweep: {len(cells)} runs, {n_done} already in the store"
            + (f" ({merged} merged from shards of earlier jobs)" if merged else "")
            + (f", {len(flying)} queued or running since an earlier submission" if flying else "")
            + f", {len(todo)} to run")
        jobs = [Tracked(CellJob(c.config.to_dict(), c.run_id, c.config.store, str(shard_path(c.config.store, c.run_id)),
                                runner.processes, c.label()))
                for c in todo]
        if jobs:
            runner.start(jobs)
        tracked = flying + jobs
        if tracked and not wait:
            log(f"sweep: not waiting; {len(tracked)} job(s) on Slurm (squeue --me). Rerun this command to merge "
                f"what has finished and resubmit what is missing.")
            return
        if tracked:
            _wait(tracked, runner, log)
        if after is not None:
            after()  # still holding the stores' locks (e.g. the seeds' average written into the store)


def mark_done(cells) -> None:
    """Set each cell's ``done``: is its run in its store? (``cells``: :class:`sweep.Cell`)"""
    by_store: dict[str, list] = {}
    for c in cells:
        by_store.setdefault(c.config.store, []).append(c)
    for path, group in by_store.items():
        if not Path(path).exists():
            continue
        with Store(path) as s:
            for c in group:
                c.done = s.has_run(c.run_id)


def _wait(tracked: list[Tracked], runner, log) -> None:
    failed: list[Tracked] = []
    shown = None
    while True:
        runner.poll(tracked)
        for t in tracked:
            if t.state == "finished" and not t.collected:
                t.collected = True
                if not _collect_job(t, log):
                    failed.append(t)
                    why = _last_error_line(t.log)
                    log(f"sweep: FAILED {t.job.label} (job {t.job_id}: {t.detail}"
                        + (f"; {why}" if why else "") + ")" + (f"; log: {t.log}" if t.log else ""))
        counts = {s: sum(t.state == s for t in tracked) for s in ("pending", "running", "finished")}
        if runner.reports_progress and counts != shown:
            shown = counts
            log(f"sweep: {counts['finished'] - len(failed)}/{len(tracked)} done, {counts['running']} running, "
                f"{counts['pending']} pending, {len(failed)} failed")
        if counts["finished"] == len(tracked):
            break
        runner.sleep()
    if failed:
        raise XLTuneError(f"sweep: {len(failed)} run(s) failed (logs above); rerun the sweep to retry them: "
                          f"finished runs are kept and a killed run resumes from its checkpoint")


def _collect_job(t: Tracked, log) -> bool:
    """Merge a finished job's shard; True when its run is in the store."""
    shard = Path(t.job.shard)
    with Store(t.job.store) as store:
        if shard.exists():
            _merge(store, shard, log)
        return store.has_run(t.job.run_key)


def _collect(store_path: str, busy: set[str], log) -> int:
    """Merge the shards that earlier jobs left (the driver was killed, or did not wait); not those of jobs still
    in flight. Returns the number of runs merged."""
    folder = shard_dir(store_path)
    shards = sorted(p for p in folder.glob("*.sqlite") if p.stem not in busy) if folder.is_dir() else []
    if not shards:
        return 0
    with Store(store_path) as store:
        return sum(len(_merge(store, p, log).merged) for p in shards)


def _merge(store: Store, shard: Path, log):
    from .store import MergeResult

    try:
        result = store.merge(shard)
    except XLTuneError as e:
        # a job killed while it created its shard leaves an empty or half-made file: set it aside (its run is not
        # in the store, so the sweep runs it again) rather than stop every later sweep on it
        bad = shard.with_suffix(".bad")
        os.replace(shard, bad)
        log(f"sweep: shard {shard.name} cannot be merged ({e}); moved to {bad.name}, its run will be redone")
        return MergeResult(shard)
    if result.conflicts:
        log(f"sweep: shard {result.line()}")  # kept for a person to look at
    else:
        shard.unlink()  # every run of it is in the store
    return result


@contextlib.contextmanager
def _driver_locks(stores: list[str]) -> Iterator[None]:
    """One driver per store: two would run the same cells at once (one resume checkpoint, two writers)."""
    handles = []
    try:
        for store in stores:
            folder = shard_dir(store)
            folder.mkdir(parents=True, exist_ok=True)
            f = open(folder / "driver.lock", "a+")  # noqa: SIM115 - held until the sweep ends
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                pid = f.read().strip() or "?"
                f.close()
                raise XLTuneError(f"another `xltune sweep` (pid {pid}) is running on {store}; wait for it or stop "
                                  f"it (lock: {folder / 'driver.lock'})") from None
            f.truncate(0)
            f.write(str(os.getpid()))
            f.flush()
            handles.append(f)
        yield
    finally:
        for f in handles:
            f.close()


def _last_error_line(path: str) -> str:
    """The last line of a job's log that reads like an error (a traceback's last line, xltune's one-line error)."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        line = line.strip()
        if re.match(r"^(xltune: error: |[\w.]*(Error|Exception|Interrupt)\b)", line):
            return line[:200]
    return ""


class Local:
    """Cells on this machine. Written here rather than with submitit's LocalExecutor, which starts every job at
    once (no worker limit), pins nothing, and leaves its jobs running when the driver is killed."""

    processes = 1
    reports_progress = False  # each start and end is a line of its own

    def __init__(self, workers: int, log):
        self.workers, self.log = max(1, workers), log
        self.queue: list[Tracked] = []
        self.running: dict[int, tuple[subprocess.Popen, Tracked]] = {}  # slot -> worker
        self.n = self.started = 0

    def adopt(self, stores) -> list[Tracked]:
        return []

    def start(self, jobs: list[Tracked]) -> None:
        self.queue, self.n = list(jobs), len(jobs)

    def sleep(self) -> None:
        time.sleep(0.2)

    def poll(self, tracked: list[Tracked]) -> None:
        if self.workers == 1:  # in this process: nothing to start, and a Ctrl-C stops the run at once
            if self.queue:
                t = self.queue.pop(0)
                self.started += 1
                self.log(f"sweep: [{self.started}/{self.n}] {t.job.label}")
                run_cell(t.job)
                t.state, t.detail = "finished", "exit 0"
            return
        for slot, (p, t) in list(self.running.items()):
            if p.poll() is not None:
                del self.running[slot]
                t.state, t.detail = "finished", f"exit {p.returncode}"
                if p.returncode == 0:
                    self.log(f"sweep: done {t.job.label}")
        gpus = _visible_gpus()
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        while self.queue and len(self.running) < self.workers:
            t = self.queue.pop(0)
            slot = next(s for s in range(self.workers) if s not in self.running)
            env = dict(os.environ)
            gpu = gpus[slot % len(gpus)] if gpus else None  # more workers than GPUs: they share, never see all
            if gpu is not None:
                env["CUDA_VISIBLE_DEVICES"] = gpu
            share = _cpu_share(cpus, slot, self.workers)
            logs = shard_dir(t.job.store) / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            t.log = str(logs / f"{t.job.run_key}.log")
            with open(t.log, "w") as out:
                p = subprocess.Popen([sys.executable, "-m", "xltune.jobs", t.job.to_json()], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, preexec_fn=_worker_setup(share))
            self.started += 1
            t.state, t.job_id = "running", str(p.pid)
            self.running[slot] = (p, t)
            self.log(f"sweep: start [{self.started}/{self.n}] {t.job.label}" + (f" on GPU {gpu}" if gpu else "")
                     + (f" on CPU {','.join(map(str, share))}" if share else ""))


def _cpu_share(cpus: list[int], slot: int, workers: int) -> list[int]:
    """Worker ``slot``'s CPUs: an equal block each; one CPU each (shared) when there are more workers than CPUs."""
    if not cpus:
        return []
    if workers > len(cpus):
        return [cpus[slot % len(cpus)]]
    k = len(cpus) // workers
    return cpus[slot * k:(slot + 1) * k]


def _worker_setup(cpus: list[int]):
    """Runs in the worker before it starts: pin it to its CPUs (its torch threads follow, :mod:`xltune.cpus`) and
    have the kernel kill it when the driver dies (a killed sweep leaves no worker writing behind it)."""

    def setup() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)
        if sys.platform.startswith("linux"):
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return setup


def _visible_gpus() -> list[str]:
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no CUDA is the common case
        n = 0
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env:
        return [g.strip() for g in env.split(",") if g.strip()][: n or None]
    return [str(i) for i in range(n)]


# Slurm's states that end a job (squeue -t all); anything else is still queued or running. A job gone from squeue
# has ended too (slurmctld forgets finished jobs after MinJobAge).
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED", "REVOKED",
         "SPECIAL_EXIT"}
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT", "RESIZING"}
REGISTRY = "slurm-jobs.json"


class Slurm:
    """Cells as one Slurm job array per store, through submitit (sbatch script, pickled job, logs, requeue on
    preemption). Job states come from squeue rather than submitit's sacct watcher: sacct needs Slurm's accounting
    database, which small clusters (and scripts/slurm-local.sh) do not run; squeue asks slurmctld itself."""

    reports_progress = True

    def __init__(self, options: SlurmOptions, log):
        if shutil.which("sbatch") is None or shutil.which("squeue") is None:
            raise XLTuneError("--launcher slurm: no sbatch/squeue on PATH (run the sweep on a Slurm login node; to "
                              "try it on this machine: sudo scripts/slurm-local.sh start)")
        self.options, self.log = options, log
        self.minutes = slurm_minutes(options.time)
        self.processes = max(1, options.gpus_per_job)
        self.t0 = time.monotonic()

    def sleep(self) -> None:
        # every 2 s at first, then less often: squeue asks the cluster's controller, shared by everyone
        time.sleep(min(30.0, 2.0 + (time.monotonic() - self.t0) / 20))

    # -- the record of submitted cells, per store ----------------------------------------------------------------
    def _read(self, store: str) -> dict:
        path = shard_dir(store) / REGISTRY
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _write(self, store: str, entries: dict) -> None:
        path = shard_dir(store) / REGISTRY
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def adopt(self, stores: list[str]) -> list[Tracked]:
        """Cells submitted earlier whose jobs are still queued or running; the others leave the record."""
        out = []
        states = None
        for store in stores:
            entries = self._read(store)
            if not entries:
                continue
            states = states if states is not None else self._squeue()
            keep = {}
            for key, e in entries.items():
                state = states.get(e["job_id"])
                if state is not None and state not in ENDED:
                    keep[key] = e
                    out.append(Tracked(CellJob(**e["job"]), "running" if state in RUNNING else "pending",
                                       e["job_id"], state, e["log"]))
            self._write(store, keep)
        return out

    def start(self, jobs: list[Tracked]) -> None:
        import submitit

        o = self.options
        by_store: dict[str, list[Tracked]] = {}
        for t in jobs:
            by_store.setdefault(t.job.store, []).append(t)
        for store, group in by_store.items():
            ex = submitit.SlurmExecutor(folder=shard_dir(store) / "slurm-logs")
            params: dict = {"job_name": "xltune-sweep", "time": self.minutes, "additional_parameters": dict(o.extra)}
            if o.partition:
                params["partition"] = o.partition
            if o.gpus_per_job > 0:
                params["gpus_per_node"] = o.gpus_per_job
            if o.cpus_per_job:
                params["cpus_per_task"] = o.cpus_per_job
            if o.array_parallelism:
                params["array_parallelism"] = o.array_parallelism
            ex.update_parameters(**params)
            quiet = io.StringIO()
            try:
                with contextlib.redirect_stderr(quiet):  # submitit echoes sbatch's complaint; it is in our line
                    submitted = ex.map_array(SlurmCell(), [t.job for t in group])
            except Exception as e:  # noqa: BLE001 - sbatch's refusal, in its own words
                lines = [ln.strip() for ln in (str(e) or quiet.getvalue()).splitlines()
                         if ln.strip() and not ln.startswith("Try ")]
                said = "; ".join(lines[-2:]) if lines else type(e).__name__
                hint = " (a cluster without GPUs: --gpus-per-job 0)" if "gres" in said.lower() else ""
                raise XLTuneError(f"sbatch refused the sweep's job array: {said}{hint}") from None
            entries = self._read(store)
            for t, j in zip(group, submitted):
                t.job_id, t.log = j.job_id, str(j.paths.stderr)
                entries[t.job.run_key] = {"job_id": t.job_id, "log": t.log, "job": asdict(t.job)}
            self._write(store, entries)
            what = (f"job array {submitted[0].job_id.split('_')[0]}" if len(group) > 1  # submitit: 1 job, no array
                    else f"job {submitted[0].job_id}")
            self.log(f"sweep: submitted {len(group)} cell(s) as Slurm {what} (logs: {shard_dir(store) / 'slurm-logs'})")

    def poll(self, tracked: list[Tracked]) -> None:
        try:
            states = self._squeue()
        except XLTuneError as e:
            self.log(f"sweep: {e}; trying again")
            return
        ended: dict[str, list[str]] = {}
        for t in tracked:
            if t.state == "finished":
                continue
            state = states.get(t.job_id)
            if state is None or state in ENDED:
                t.state, t.detail = "finished", state or "left the queue"
                ended.setdefault(t.job.store, []).append(t.job.run_key)
            else:
                t.state, t.detail = ("running" if state in RUNNING else "pending"), state
        for store, keys in ended.items():
            entries = self._read(store)
            self._write(store, {k: v for k, v in entries.items() if k not in keys})

    @staticmethod
    def _squeue() -> dict[str, str]:
        """job id (``ARRAY_TASK`` for array jobs) -> state, for this user's jobs the controller still knows."""
        try:
            out = subprocess.run(["squeue", "--me", "-h", "-r", "-t", "all", "-o", "%i|%T"], capture_output=True,
                                 text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise XLTuneError("squeue did not answer in 60 s") from None
        if out.returncode != 0:
            raise XLTuneError(f"squeue failed: {out.stderr.strip() or out.returncode}")
        states = {}
        for line in out.stdout.splitlines():
            job_id, _, state = line.strip().partition("|")
            if job_id:
                states[job_id] = state.split()[0] if state else ""
        return states


def slurm_minutes(text: str) -> int:
    """Slurm's time formats (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) -> whole minutes (at least 1)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if not m:
        raise XLTuneError(f"--time {text!r}: expected Slurm's format, e.g. 120, 2:00:00 or 1-12:00")
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # MM
        seconds = int(a) * 60
    return max(1, -(-seconds // 60))
