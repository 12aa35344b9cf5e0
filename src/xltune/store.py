"""SQLite results store: one row per run, its metrics per language, and its per-example predictions.

A run is written in one transaction (WAL mode): it is in the store completely or not at all, and a run key
(hash of the run's variant and seed, :mod:`xltune.variants`) is never written twice. The analysis and the report
read only this file.

Sweeps on several machines never share one file (SQLite's locking is unreliable over network file systems): each
job writes a *shard*, a store of its own (rollback journal: WAL needs every process on one host), and
:meth:`Store.merge` copies a shard's runs into the sweep's store, idempotently; a shard that disagrees with the
store about a run it already holds is refused whole.

Schema version 3 (``PRAGMA user_version``; analysis code reads it with plain SQL). As of version 2:

- ``runs``: run_id (PK), created (UTC ISO), seed, task, method, objective ("none" or e.g. "tcl+lcl"), model,
  shots (text: "16" or "all"), source_langs (comma-separated), config_json (the resolved config, re-runnable),
  manifest_json (few-shot example ids per seed), env_json (versions of python/torch/transformers/peft, device),
  trainable_params, total_params, train_seconds, eval_seconds, extra_json (method-specific facts), variant (id of
  the configuration: runs of one variant are seeds of one experiment), variant_label, run_key (hash of variant and
  seed; equals run_id for runs written since version 2), config_schema, headline_metric (the task's primary
  metric), ner_mode (span-F1 tasks: conlleval | strict; runs of xltune 0.1 were strict), shot_seed (the seed of the
  shot sample; the run's seed unless train.shot_seed says otherwise), oracle (what the run knew that zero-shot
  transfer does not: "target dev", "translation"; empty for none).
- ``metrics``: run_id, lang, split, metric ("accuracy", "f1", "precision", "recall"), value (0..1), n (examples).
- ``predictions``: run_id, lang, split, idx (example index in its file), gold, pred (label names; for token
  tasks JSON lists of tag names).

Version 3 adds evaluations of stored runs on other data (``xltune eval``), linked to their run and kept apart from
the run's own results: they are not seeds, and nothing that aggregates ``metrics`` sees them.

- ``evaluations``: eval_id (PK: hash of the run and what was evaluated), run_id (the evaluated run; deleted with
  it, as a redone run is a new model), created, task, split, data (the data folder, or "hub"), config_json (the
  run's config with the evaluation's task and eval sections), env_json, eval_seconds, extra_json.
- ``eval_metrics`` / ``eval_predictions``: as ``metrics`` / ``predictions``, keyed by eval_id.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import XLTuneError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    seed INTEGER NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    objective TEXT NOT NULL,
    model TEXT NOT NULL,
    shots TEXT NOT NULL,
    source_langs TEXT NOT NULL,
    config_json TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    env_json TEXT NOT NULL,
    trainable_params INTEGER,
    total_params INTEGER,
    train_seconds REAL,
    eval_seconds REAL,
    extra_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    lang TEXT NOT NULL,
    split TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (run_id, lang, split, metric)
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    lang TEXT NOT NULL,
    split TEXT NOT NULL,
    idx INTEGER NOT NULL,
    gold TEXT NOT NULL,
    pred TEXT NOT NULL,
    PRIMARY KEY (run_id, lang, split, idx)
);
CREATE INDEX IF NOT EXISTS metrics_by_lang ON metrics(lang, split, metric);
CREATE TABLE IF NOT EXISTS evaluations (
    eval_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    data TEXT NOT NULL,
    config_json TEXT NOT NULL,
    env_json TEXT NOT NULL,
    eval_seconds REAL,
    extra_json TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS eval_metrics (
    eval_id TEXT NOT NULL REFERENCES evaluations(eval_id) ON DELETE CASCADE,
    lang TEXT NOT NULL,
    split TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (eval_id, lang, split, metric)
);
CREATE TABLE IF NOT EXISTS eval_predictions (
    eval_id TEXT NOT NULL REFERENCES evaluations(eval_id) ON DELETE CASCADE,
    lang TEXT NOT NULL,
    split TEXT NOT NULL,
    idx INTEGER NOT NULL,
    gold TEXT NOT NULL,
    pred TEXT NOT NULL,
    PRIMARY KEY (eval_id, lang, split, idx)
);
CREATE INDEX IF NOT EXISTS evaluations_by_run ON evaluations(run_id);
"""
STORE_VERSION = 3  # 2: variant columns; 3: evaluations of stored runs (tables created on open)
# columns added in version 2, filled for older runs by _migrate (from each run's stored config)
V2_COLUMNS = (("variant", "TEXT"), ("variant_label", "TEXT"), ("run_key", "TEXT"), ("config_schema", "INTEGER"),
              ("headline_metric", "TEXT"), ("ner_mode", "TEXT"), ("shot_seed", "INTEGER"), ("oracle", "TEXT"))
RUN_COLUMNS = ("run_id", "created", "seed", "task", "method", "objective", "model", "shots", "source_langs",
               "config_json", "manifest_json", "env_json", "trainable_params", "total_params", "train_seconds",
               "eval_seconds", "extra_json", "variant", "variant_label", "run_key", "config_schema", "headline_metric",
               "ner_mode", "shot_seed", "oracle")


@dataclass
class MetricRow:
    lang: str
    split: str
    metric: str
    value: float
    n: int


@dataclass
class RunRecord:
    run_id: str
    seed: int
    task: str
    method: str
    objective: str
    model: str
    shots: str
    source_langs: Sequence[str]
    config: dict
    manifest: dict
    env: dict
    metrics: list[MetricRow]
    # (lang, split) -> [(idx, gold, pred)]
    predictions: dict[tuple[str, str], list[tuple[int, str, str]]] = field(default_factory=dict)
    trainable_params: int | None = None
    total_params: int | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    extra: dict = field(default_factory=dict)
    variant: str = ""
    variant_label: str = ""
    config_schema: int = 0
    headline_metric: str = ""
    ner_mode: str = ""  # span-F1 tasks: how the stored F1 counts entities (conlleval | strict)
    shot_seed: int | None = None  # the seed of the shot sample (None: the run's seed)
    oracle: str = ""  # what the variant knows that zero-shot transfer does not ("target dev", "translation")


@dataclass
class EvalRecord:
    """A stored run scored on other data (``xltune eval``): linked to ``run_id``, never one of its seeds."""

    eval_id: str
    run_id: str
    task: str
    split: str
    data: str  # the data folder, or "hub"
    config: dict
    env: dict
    metrics: list[MetricRow]
    predictions: dict[tuple[str, str], list[tuple[int, str, str]]] = field(default_factory=dict)
    eval_seconds: float | None = None
    extra: dict = field(default_factory=dict)


class Store:
    """Open (and create) a results store. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, timeout: float = 60.0, journal: str = "wal"):
        """``journal="delete"`` for a shard: one writer, and a file that is whole on any file system once a
        transaction has committed (WAL keeps committed runs in a side file and needs shared memory on one host)."""
        if journal not in ("wal", "delete"):
            raise ValueError(f"journal must be 'wal' or 'delete', got {journal!r}")
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = self._open(timeout, journal)
        except (sqlite3.Error, OSError) as e:
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                raise XLTuneError(f"cannot open results store {self.path}: {blocker} is a file, not a folder") from None
            raise XLTuneError(f"cannot open results store {self.path}: {e} (is the folder writable?)") from None
        self.conn.row_factory = sqlite3.Row

    def _open(self, timeout: float, journal: str) -> sqlite3.Connection:
        """Connect, switch to WAL and create the schema; several processes may do this at once (sweep workers,
        ranks of a multi-process run). Switching the journal mode and WAL recovery can answer "database is locked"
        without waiting on SQLite's busy handler, so the open itself is retried until ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            conn = sqlite3.connect(str(self.path), timeout=timeout)
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != journal:
                    conn.execute(f"PRAGMA journal_mode={journal}")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.executescript(SCHEMA)
                have = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
                if (conn.execute("PRAGMA user_version").fetchone()[0] < STORE_VERSION
                        or any(c not in have for c, _ in V2_COLUMNS)):
                    _migrate(conn)
                return conn
            except sqlite3.OperationalError as e:
                conn.close()
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # -- writing ---------------------------------------------------------------------------------------------
    def has_run(self, run_key: str) -> bool:
        """Is the run with this key in the store (written now, or by an older version under another id)?"""
        return self.stored_id(run_key) is not None

    def stored_id(self, run_key: str) -> str | None:
        """The run id under which the run with ``run_key`` is stored (older versions used other ids), or None."""
        row = self.conn.execute("SELECT run_id FROM runs WHERE run_key=? OR run_id=? LIMIT 1",
                                (run_key, run_key)).fetchone()
        return row[0] if row else None

    def write_run(self, rec: RunRecord, replace: bool = False) -> None:
        """Write a run with its metrics and predictions in one transaction; never half, never twice."""
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self.conn:  # one transaction: commit on success, rollback on any error
                old = self.stored_id(rec.run_id)
                if old is not None:
                    if not replace:
                        raise XLTuneError(f"run {rec.run_id} is already in {self.path}")
                    self.conn.execute("DELETE FROM runs WHERE run_id=?", (old,))
                self.conn.execute(
                    f"INSERT INTO runs ({','.join(RUN_COLUMNS)}) VALUES ({','.join('?' * len(RUN_COLUMNS))})",
                    (
                        rec.run_id, created, rec.seed, rec.task, rec.method, rec.objective, rec.model,
                        str(rec.shots), ",".join(rec.source_langs), _dumps(rec.config), _dumps(rec.manifest),
                        _dumps(rec.env), rec.trainable_params, rec.total_params, rec.train_seconds,
                        rec.eval_seconds, _dumps(rec.extra), rec.variant or _fallback_variant(rec),
                        rec.variant_label or (rec.method if rec.objective == "none" else f"{rec.method}+{rec.objective}"),
                        rec.run_id, rec.config_schema, rec.headline_metric, rec.ner_mode,
                        rec.seed if rec.shot_seed is None else rec.shot_seed, rec.oracle,
                    ),
                )
                self.conn.executemany(
                    "INSERT INTO metrics VALUES (?,?,?,?,?,?)",
                    [(rec.run_id, m.lang, m.split, m.metric, float(m.value), int(m.n)) for m in rec.metrics],
                )
                for (lang, split), rows in rec.predictions.items():
                    self.conn.executemany(
                        "INSERT INTO predictions VALUES (?,?,?,?,?,?)",
                        [(rec.run_id, lang, split, int(i), g, p) for i, g, p in rows],
                    )
        except sqlite3.Error as e:
            raise XLTuneError(f"cannot write run {rec.run_id} to {self.path}: {e}") from None

    def write_evaluation(self, rec: EvalRecord, replace: bool = False) -> None:
        """Write an evaluation of a stored run with its metrics and predictions in one transaction."""
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            with self.conn:
                if self.conn.execute("SELECT 1 FROM runs WHERE run_id=?", (rec.run_id,)).fetchone() is None:
                    raise XLTuneError(f"run {rec.run_id} is not in {self.path}")
                if self.has_evaluation(rec.eval_id):
                    if not replace:
                        raise XLTuneError(f"evaluation {rec.eval_id} is already in {self.path}")
                    self.conn.execute("DELETE FROM evaluations WHERE eval_id=?", (rec.eval_id,))
                self.conn.execute(
                    "INSERT INTO evaluations (eval_id, run_id, created, task, split, data, config_json, env_json, "
                    "eval_seconds, extra_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (rec.eval_id, rec.run_id, created, rec.task, rec.split, rec.data, _dumps(rec.config),
                     _dumps(rec.env), rec.eval_seconds, _dumps(rec.extra)))
                self.conn.executemany(
                    "INSERT INTO eval_metrics VALUES (?,?,?,?,?,?)",
                    [(rec.eval_id, m.lang, m.split, m.metric, float(m.value), int(m.n)) for m in rec.metrics])
                for (lang, split), rows in rec.predictions.items():
                    self.conn.executemany(
                        "INSERT INTO eval_predictions VALUES (?,?,?,?,?,?)",
                        [(rec.eval_id, lang, split, int(i), g, p) for i, g, p in rows])
        except sqlite3.Error as e:
            raise XLTuneError(f"cannot write evaluation {rec.eval_id} to {self.path}: {e}") from None

    def has_evaluation(self, eval_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM evaluations WHERE eval_id=?", (eval_id,)).fetchone() is not None

    def merge(self, shard: str | Path) -> MergeResult:
        """Copy the runs of ``shard`` (another store: a sweep job's) that this store lacks, with their metrics and
        predictions, in one transaction. A run this store already holds (same run key) is compared, never written
        again: the same metrics -> nothing to do, so merging a shard twice changes nothing; other metrics -> the
        shard is refused whole (its results disagree with what is stored: a changed environment or a bug, for a
        person to look at) and nothing of it is written. A shard of an older xltune is upgraded in place first."""
        shard = Path(shard)
        if not shard.is_file():
            raise XLTuneError(f"shard {shard}: no such file")
        if shard.resolve() == self.path.resolve():
            raise XLTuneError(f"shard {shard} is the store itself")
        _upgrade(shard)
        result = MergeResult(shard)
        try:
            self.conn.execute("ATTACH DATABASE ? AS shard", (str(shard),))
        except sqlite3.Error as e:
            raise XLTuneError(f"cannot read shard {shard}: {e}") from None
        try:
            with self.conn:  # one transaction: the whole shard or nothing
                self.conn.execute("BEGIN IMMEDIATE")
                new = []
                for run_id, run_key, seed, label in self.conn.execute(
                        "SELECT run_id, run_key, seed, variant_label FROM shard.runs ORDER BY run_id").fetchall():
                    old = self.stored_id(run_key or run_id)
                    if old is None:
                        new.append(run_id)
                        continue
                    diff = _metric_difference(self.conn, run_id, old)
                    if diff:
                        result.conflicts.append(f"run {run_id} (seed {seed}, {label}): {diff}")
                    else:
                        result.present += 1
                if result.conflicts:
                    return result  # nothing written (the transaction commits no change)
                cols = ",".join(RUN_COLUMNS)
                for run_id in new:
                    self.conn.execute(f"INSERT INTO runs ({cols}) SELECT {cols} FROM shard.runs WHERE run_id=?",
                                      (run_id,))
                    self.conn.execute("INSERT INTO metrics (run_id, lang, split, metric, value, n) SELECT run_id, "
                                      "lang, split, metric, value, n FROM shard.metrics WHERE run_id=?", (run_id,))
                    self.conn.execute("INSERT INTO predictions (run_id, lang, split, idx, gold, pred) SELECT "
                                      "run_id, lang, split, idx, gold, pred FROM shard.predictions WHERE run_id=?",
                                      (run_id,))
                result.merged = new
        except sqlite3.DatabaseError as e:
            raise XLTuneError(f"cannot merge shard {shard} into {self.path}: {e}") from None
        finally:
            self.conn.execute("DETACH DATABASE shard")
        return result

    # -- reading ---------------------------------------------------------------------------------------------
    def evaluations(self, **where: object) -> list[dict]:
        """Evaluations of stored runs (config/env/extra parsed), filtered by equality on their columns."""
        sql, args = _where("SELECT * FROM evaluations", where)
        out = []
        for r in self.conn.execute(sql + " ORDER BY created, eval_id", args):
            d = dict(r)
            for k in ("config_json", "env_json", "extra_json"):
                d[k[: -len("_json")]] = json.loads(d.pop(k))
            out.append(d)
        return out

    def eval_metrics(self, **where: object) -> list[dict]:
        """Metric rows of evaluations joined with the evaluation (eval_id, run_id, task, data) and its run's
        identifying columns (model, method, objective, shots, seed, variant, variant_label)."""
        base = ("SELECT e.eval_id, e.run_id, e.task, e.data, r.model, r.method, r.objective, r.shots, r.seed,"
                " r.source_langs, r.variant, r.variant_label, r.task AS run_task, m.lang, m.split, m.metric, m.value,"
                " m.n FROM eval_metrics m JOIN evaluations e USING (eval_id) JOIN runs r ON r.run_id = e.run_id")
        where = {(k if "." in k else f"e.{k}" if k in ("eval_id", "run_id", "task") else k): v
                 for k, v in where.items()}
        sql, args = _where(base, where)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY e.created, e.eval_id, m.lang", args)]

    def predictions_of(self, run_ids: Iterable[str] = (), eval_ids: Iterable[str] = ()) -> list[dict]:
        """Every stored per-example prediction of ``run_ids`` (kind "run") and of the evaluations ``eval_ids``
        (kind "evaluation"): id, lang, split, idx, gold, pred."""
        out = []
        for kind, table, key, ids in (("run", "predictions", "run_id", list(run_ids)),
                                      ("evaluation", "eval_predictions", "eval_id", list(eval_ids))):
            for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
                chunk = ids[i:i + 500]
                rows = self.conn.execute(f"SELECT {key}, lang, split, idx, gold, pred FROM {table} WHERE {key} IN "
                                         f"({','.join('?' * len(chunk))}) ORDER BY {key}, lang, split, idx", chunk)
                out += [{"kind": kind, "id": r[0], "lang": r[1], "split": r[2], "idx": r[3], "gold": r[4],
                         "pred": r[5]} for r in rows]
        return out

    def eval_predictions(self, eval_id: str, lang: str, split: str) -> list[tuple[int, str, str]]:
        rows = self.conn.execute("SELECT idx, gold, pred FROM eval_predictions WHERE eval_id=? AND lang=? AND split=? "
                                 "ORDER BY idx", (eval_id, lang, split))
        return [(r[0], r[1], r[2]) for r in rows]

    def runs(self, **where: object) -> list[dict]:
        """Runs as dicts (config/manifest/env/extra parsed), filtered by equality on run columns."""
        sql, args = _where("SELECT * FROM runs", where)
        out = []
        for r in self.conn.execute(sql + " ORDER BY created, run_id", args):
            d = dict(r)
            for k in ("config_json", "manifest_json", "env_json", "extra_json"):
                d[k[: -len("_json")]] = json.loads(d.pop(k))
            out.append(d)
        return out

    def metrics(self, **where: object) -> list[dict]:
        """Metric rows joined with their run's identifying columns (task, method, objective, model, shots, seed,
        variant, variant_label, headline_metric)."""
        base = (
            "SELECT r.run_id, r.task, r.method, r.objective, r.model, r.shots, r.seed, r.source_langs,"
            " r.variant, r.variant_label, r.headline_metric, r.oracle,"
            " m.lang, m.split, m.metric, m.value, m.n FROM metrics m JOIN runs r USING (run_id)"
        )
        sql, args = _where(base, where)
        return [dict(r) for r in self.conn.execute(sql + " ORDER BY r.run_id, m.lang", args)]

    def predictions(self, run_id: str, lang: str, split: str) -> list[tuple[int, str, str]]:
        rows = self.conn.execute(
            "SELECT idx, gold, pred FROM predictions WHERE run_id=? AND lang=? AND split=? ORDER BY idx",
            (run_id, lang, split),
        )
        return [(r[0], r[1], r[2]) for r in rows]


@dataclass
class MergeResult:
    """What :meth:`Store.merge` did with one shard."""

    shard: Path
    merged: list[str] = field(default_factory=list)  # run ids copied into the store
    present: int = 0  # runs the store already held, with the same metrics
    conflicts: list[str] = field(default_factory=list)  # runs whose metrics differ from the store's (shard refused)

    def line(self) -> str:
        if self.conflicts:
            more = f" (and {len(self.conflicts) - 1} more)" if len(self.conflicts) > 1 else ""
            return (f"{self.shard}: NOT merged: {self.conflicts[0]}{more}; the store keeps its copy (look at both "
                    f"before replacing anything)")
        return f"{self.shard}: {len(self.merged)} run(s) merged, {self.present} already in the store"


def _upgrade(path: Path) -> None:
    """An older store is brought to the current schema in place, as every command that opens one does."""
    try:
        with sqlite3.connect(str(path)) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        conn.close()
    except sqlite3.DatabaseError as e:
        raise XLTuneError(f"{path} is not an xltune results store ({e})") from None
    if "runs" not in tables:
        raise XLTuneError(f"{path} is not an xltune results store (no runs table)")
    if version < STORE_VERSION:
        Store(path).close()


def _metric_difference(conn: sqlite3.Connection, shard_id: str, store_id: str) -> str:
    """'' when the shard's run and the store's have the same metrics, else the first difference, in words."""
    sql = "SELECT lang, split, metric, value, n FROM {}metrics WHERE run_id=? ORDER BY lang, split, metric"
    a = {r[:3]: r[3:] for r in conn.execute(sql.format("shard."), (shard_id,))}
    b = {r[:3]: r[3:] for r in conn.execute(sql.format("main."), (store_id,))}
    if a == b:
        return ""
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lang, split, metric = key
            show = lambda v: "absent" if v is None else f"{v[0]:.6g} (n={v[1]})"  # noqa: E731
            return f"{metric} {lang}/{split} is {show(a.get(key))} in the shard, {show(b.get(key))} in the store"
    return "metrics differ"


def _fallback_variant(rec: RunRecord) -> str:
    """A record written without a variant (by hand, e.g. in tests): its identifying fields and config, hashed, so
    two different records are never taken for seeds of one experiment."""
    import hashlib

    blob = _dumps({"task": rec.task, "method": rec.method, "objective": rec.objective, "model": rec.model,
                   "shots": str(rec.shots), "source_langs": list(rec.source_langs), "config": rec.config})
    return "rec-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a store written by an older xltune to today's version, in place, losing nothing: add the variant
    columns and fill them from each run's stored config (read through today's config loader, which understands
    older keys).
    Run ids stay as they were (checkpoint folders are named by them); ``run_key`` is what a rerun looks up, so a
    rerun of the same config skips the run (version 3's tables are created by the schema script on open). One
    transaction; several processes may open the store at once."""
    from .errors import quiet_notes

    conn.execute("BEGIN IMMEDIATE")
    try:
        have = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        if (conn.execute("PRAGMA user_version").fetchone()[0] >= STORE_VERSION
                and all(c in have for c, _ in V2_COLUMNS)):  # another process did it meanwhile
            conn.execute("COMMIT")
            return
        for name, kind in V2_COLUMNS:
            if name not in have:
                conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        rows = conn.execute("SELECT run_id, seed, objective, config_json, extra_json FROM runs "
                            "WHERE run_key IS NULL").fetchall()
        with quiet_notes():
            for run_id, seed, objective, config_json, extra_json in rows:
                conn.execute("UPDATE runs SET variant=?, variant_label=?, run_key=?, config_schema=?, objective=?, "
                             "headline_metric=?, ner_mode=?, shot_seed=? WHERE run_id=?",
                             (*_identity(run_id, seed, objective, config_json, extra_json, conn), seed, run_id))
        conn.execute("UPDATE runs SET shot_seed=seed WHERE shot_seed IS NULL")
        conn.execute("UPDATE runs SET oracle='' WHERE oracle IS NULL")
        conn.execute("CREATE INDEX IF NOT EXISTS runs_by_key ON runs(run_key)")
        conn.execute(f"PRAGMA user_version={STORE_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _identity(run_id: str, seed: int, objective: str, config_json: str, extra_json: str, conn) -> tuple:
    """(variant, label, run_key, config_schema, objective tag, headline metric, ner mode) of a run stored by an
    older version. Distillation runs kept their teacher in ``extra``: it becomes their distillation objective, as
    it is declared today. Span F1 was strict IOB2 then: such runs are strict-mode variants (a rerun today scores
    conlleval's way, so it is a new variant). A config that no longer loads keeps a variant of its own, named by its
    hash."""
    import hashlib

    from . import variants
    from .config import ExperimentConfig

    config, extra = json.loads(config_json), json.loads(extra_json or "{}")
    metrics = {r[0] for r in conn.execute("SELECT DISTINCT metric FROM metrics WHERE run_id=?", (run_id,))}
    headline = "f1" if "f1" in metrics else "accuracy"
    ner_mode = "strict" if headline == "f1" else ""
    try:
        if ner_mode:
            config = dict(config)
            config["eval"] = {**(config.get("eval") or {}), "ner_mode": "strict"}
        if objective == "kd" and isinstance(extra.get("kd"), dict):
            config = dict(config)
            config.pop("objective", None)
            kd = extra["kd"]
            text, split, langs = {}, None, []
            for lang, src in (kd.get("sources") or {}).items():
                where = src.get("from", "")
                if where.endswith(" split (labels dropped)"):
                    split = where[: -len(" split (labels dropped)")]
                    langs.append(lang)
                else:
                    text[lang] = where
            config["objectives"] = [{"name": "distillation", "teacher": kd["teacher_run_id"],
                                     "temperature": kd.get("temperature", 2.0), "text": text, "split": split,
                                     "languages": langs,
                                     "max_examples": _kd_cap(run_id, seed, json.loads(config_json), kd)}]
        cfg = ExperimentConfig.from_dict(config, f"run {run_id}")
        return (variants.variant_id(cfg), variants.label(cfg), cfg.run_key(seed), variants.SCHEMA_VERSION,
                cfg.objective_tag, headline, ner_mode)
    except Exception as e:  # noqa: BLE001 - an unreadable old config must not block opening the store
        vid = "unread-" + hashlib.sha256(config_json.encode()).hexdigest()[:8]
        return vid, f"{objective} (config not readable: {str(e)[:60]})", run_id, 1, objective, headline, ner_mode


def _kd_cap(run_id: str, seed: int, student: dict, kd: dict) -> int:
    """The max_examples a distillation run of xltune 0.1 was given. It was not stored, but it went into the run's
    id (a hash of the student's run key, the teacher, temperature, cap and sources): the cap that reproduces the
    stored id is the one used. Candidates: 0 (all), the default 1000, and each language's example count."""
    import hashlib
    import itertools

    def h(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]

    conf = {k: v for k, v in student.items() if k not in ("seeds", "store", "output_dir", "save_checkpoint")}
    conf["eval"] = {k: v for k, v in (conf.get("eval") or {}).items() if k != "batch_size"}
    student_key = h({"config": conf, "seed": seed})  # xltune 0.1's run key
    srcs = kd.get("sources") or {}
    caps = [0, 1000, *sorted({int(v.get("examples", 0)) for v in srcs.values()})]
    for order in itertools.permutations(srcs):
        sources = []
        for lang in order:
            where = srcs[lang].get("from", "")
            split = where[: -len(" split (labels dropped)")] if where.endswith(" split (labels dropped)") else None
            sources.append({"lang": lang, "path": None if split else where, "split": split})
        for cap in caps:
            if h({"student": student_key, "teacher": kd["teacher_run_id"], "temperature": kd.get("temperature", 2.0),
                  "max_examples": cap, "sources": sources}) == run_id:
                return cap
    return 1000


def _dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)


def _where(base: str, where: dict[str, object]) -> tuple[str, list]:
    if not where:
        return base, []
    clauses, args = [], []
    for col, v in where.items():
        if not col.replace("_", "").replace(".", "").isalnum():  # column names only, never user SQL
            raise ValueError(f"bad column name {col!r}")
        if isinstance(v, Iterable) and not isinstance(v, (str, bytes)):
            v = list(v)
            clauses.append(f"{col} IN ({','.join('?' * len(v))})")
            args.extend(v)
        else:
            clauses.append(f"{col}=?")
            args.append(v)
    return base + " WHERE " + " AND ".join(clauses), args
