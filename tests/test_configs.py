"""Every config the project ships loads, and -- where its data is local and ../shared is here -- reads its data
as a run would (pools, dev and test files with labels, K shots), without building a model (`--dry-run`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xltune.config import load_config
from xltune.sweep import expand_plan, is_plan

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_loads(path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # paths in a config are relative to its file, wherever xltune is started
    if is_plan(path):
        assert expand_plan(path)
    else:
        load_config(path)


@pytest.mark.shared
@pytest.mark.parametrize("path", [p for p in CONFIGS if "../shared" in p.read_text()],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_configs_read_their_data(path, shared_data, monkeypatch, capsys, tmp_path):
    from xltune.cli import main

    monkeypatch.chdir(tmp_path)  # ../../../shared from configs/examples/ is found from any working directory
    if is_plan(path):
        assert main(["sweep", str(path), "--dry-run"]) == 0
    else:
        assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " pool " in out and "languages (" in out
