"""The SQLite store: one transaction per run, never twice, readable back."""

from __future__ import annotations

import sqlite3

import pytest

from xltune.errors import XLTuneError
from xltune.store import MetricRow, RunRecord, Store


def record(run_id="r1", seed=1, preds=True):
    return RunRecord(
        run_id=run_id, seed=seed, task="xnli", method="deep_prompt", objective="none", model="m", shots="16",
        source_langs=["en"], config={"a": 1}, manifest={"ids": ["en/dev/3"]}, env={"torch": "x"},
        metrics=[MetricRow("en", "test", "accuracy", 0.5, 4), MetricRow("de", "test", "accuracy", 0.25, 4)],
        predictions={("en", "test"): [(0, "neutral", "neutral"), (1, "entailment", "neutral")]} if preds else {},
        trainable_params=10, total_params=100,
    )


def test_write_and_read_back(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.write_run(record())
        assert s.has_run("r1")
        (run,) = s.runs()
        assert run["config"] == {"a": 1} and run["manifest"]["ids"] == ["en/dev/3"]
        rows = s.metrics(method="deep_prompt")
        assert {(r["lang"], r["value"]) for r in rows} == {("en", 0.5), ("de", 0.25)}
        assert s.predictions("r1", "en", "test")[1] == (1, "entailment", "neutral")
        assert s.metrics(lang=["de"])[0]["value"] == 0.25


def test_never_twice_and_replace(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.write_run(record())
        with pytest.raises(XLTuneError, match="already in"):
            s.write_run(record())
        s.write_run(record(), replace=True)
        assert len(s.runs()) == 1 and len(s.metrics()) == 2


def test_failed_write_leaves_nothing(tmp_path):
    bad = record()
    bad.metrics.append(MetricRow("en", "test", "accuracy", 0.9, 4))  # duplicate primary key -> the insert fails
    with Store(tmp_path / "s.sqlite") as s:
        with pytest.raises(XLTuneError, match="cannot write run"):
            s.write_run(bad)
        assert s.runs() == [] and s.metrics() == []
    raw = sqlite3.connect(tmp_path / "s.sqlite")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unwritable_store_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(XLTuneError, match="cannot open results store"):
        Store(tmp_path / "file" / "s.sqlite")



def _open_and_write(path, i, barrier, errors):
    barrier.wait()  # all start opening the new file at the same moment
    try:
        with Store(path) as s:
            s.write_run(record(run_id=f"r{i}", seed=i))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        errors.put(f"{i}: {e}")


def test_many_processes_open_a_fresh_store_at_once(tmp_path):
    """Sweep workers and the ranks of a multi-process run open the same new file together: no "database is locked"."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    n = 8
    path, barrier, errors = tmp_path / "shared.sqlite", ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_open_and_write, args=(path, i, barrier, errors)) for i in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    failures = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert failures == []
    with Store(path) as s:
        assert len(s.runs()) == n and len(s.metrics()) == 2 * n
