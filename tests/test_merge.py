"""Merging shard stores into a store (`xltune store merge`, what a sweep does as its jobs finish): idempotent, never a
run twice, and a shard that disagrees with the store is reported and left out whole."""

from __future__ import annotations

import sqlite3

import pytest

from xltune.cli import main as cli
from xltune.errors import XLTuneError
from xltune.store import MetricRow, RunRecord, Store


def record(run_id, seed=1, acc=0.5):
    return RunRecord(
        run_id=run_id, seed=seed, task="xnli", method="finetune", objective="none", model="m", shots="4",
        source_langs=["en"], config={"seed": seed}, manifest={"ids": [f"en/dev/{seed}"]}, env={"torch": "x"},
        metrics=[MetricRow("en", "test", "accuracy", acc, 4), MetricRow("de", "test", "accuracy", 0.25, 4)],
        predictions={("en", "test"): [(0, "neutral", "neutral"), (1, "entailment", "neutral")]},
        variant="v1", variant_label="finetune",
    )


def shard(path, *records):
    with Store(path, journal="delete") as s:
        for r in records:
            s.write_run(r)
    return path


def dump(path) -> dict:
    """Every row of every table: what 'changes nothing' is checked against."""
    conn = sqlite3.connect(str(path))
    try:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in ("runs", "metrics", "predictions")}
    finally:
        conn.close()


def test_merging_the_same_shards_twice_changes_nothing(tmp_path):
    a = shard(tmp_path / "a.sqlite", record("r1", 1), record("r2", 2))
    b = shard(tmp_path / "b.sqlite", record("r3", 3))
    store = tmp_path / "store.sqlite"
    with Store(store) as s:
        first = [s.merge(a), s.merge(b)]
    assert [sorted(r.merged) for r in first] == [["r1", "r2"], ["r3"]]
    once = dump(store)
    assert len(once["runs"]) == 3 and len(once["metrics"]) == 6 and len(once["predictions"]) == 6
    with Store(store) as s:
        again = [s.merge(a), s.merge(b), s.merge(a)]
    assert [(r.merged, r.present, r.conflicts) for r in again] == [([], 2, []), ([], 1, []), ([], 2, [])]
    assert dump(store) == once  # not a row added, removed or changed (the run's 'created' time included)
    with Store(store) as s:
        assert s.runs(run_id="r1")[0]["config"] == {"seed": 1} and s.predictions("r1", "en", "test")[1][2] == "neutral"


def test_a_shard_holding_a_run_with_other_metrics_is_reported_and_not_merged(tmp_path):
    store = tmp_path / "store.sqlite"
    with Store(store) as s:
        s.write_run(record("r1", 1, acc=0.5))
    # r1 again, with another accuracy, next to a run the store lacks: the whole shard stays out
    bad = shard(tmp_path / "bad.sqlite", record("r1", 1, acc=0.75), record("r9", 9))
    before = dump(store)
    with Store(store) as s:
        result = s.merge(bad)
    assert result.merged == [] and result.present == 0 and len(result.conflicts) == 1
    line = result.line()
    assert "\n" not in line and "NOT merged" in line and "run r1" in line
    assert "accuracy en/test is 0.75 (n=4) in the shard, 0.5 (n=4) in the store" in line
    assert dump(store) == before  # neither r1's other copy nor r9


def test_store_merge_command(tmp_path, capsys):
    good = shard(tmp_path / "good.sqlite", record("r1", 1), record("r2", 2))
    same = shard(tmp_path / "same.sqlite", record("r2", 2))  # r2 again, same metrics: nothing to do
    bad = shard(tmp_path / "bad.sqlite", record("r1", 1, acc=0.0), record("r3", 3))
    store = tmp_path / "store.sqlite"
    assert cli(["store", "merge", str(good), str(same), "--into", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{good}: 2 run(s) merged, 0 already in the store",
                   f"{same}: 0 run(s) merged, 1 already in the store"]
    before = dump(store)
    assert cli(["store", "merge", str(bad), str(good), "--into", str(store)]) == 2
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 2 and err[0].startswith(f"{bad}: NOT merged: run r1 (seed 1, finetune): accuracy en/test is 0")
    assert err[1] == f"xltune: error: 1 shard(s) not merged: their runs differ from the copies in {store}"
    assert captured.out.splitlines() == [f"{good}: 0 run(s) merged, 2 already in the store"]
    assert dump(store) == before
    with Store(store) as s:
        keys = [r["run_key"] for r in s.runs()]
    assert sorted(keys) == ["r1", "r2"]  # each run exactly once


def test_what_cannot_be_merged_is_a_clear_error(tmp_path):
    store = tmp_path / "store.sqlite"
    (tmp_path / "notes.txt").write_text("not a database\n" * 100)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(str(other)).execute("CREATE TABLE t (x)").connection.commit()
    with Store(store) as s:
        with pytest.raises(XLTuneError, match="no such file"):
            s.merge(tmp_path / "missing.sqlite")
        with pytest.raises(XLTuneError, match="is not an xltune results store"):
            s.merge(tmp_path / "notes.txt")
        with pytest.raises(XLTuneError, match=r"is not an xltune results store \(no runs table\)"):
            s.merge(other)
        with pytest.raises(XLTuneError, match="is the store itself"):
            s.merge(store)


def test_a_shard_uses_a_rollback_journal(tmp_path):
    """A shard's committed runs are in its one file (WAL would keep them in a side file, and needs one host)."""
    path = shard(tmp_path / "s.sqlite", record("r1"))
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert not (tmp_path / "s.sqlite-wal").exists()
