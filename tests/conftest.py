"""Shared test fixtures. Tests run offline on tiny models and tiny data that they write themselves.

Tests that read real benchmark files use the ``shared_data`` fixture, which skips cleanly when ../shared
(beside the project root) is absent, as in a user's fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("XLTUNE_SHARED", ROOT.parent / "shared"))

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Tests write only under temporary folders: an entry that appears at the top of the checkout during the session (a
# default `store: results.sqlite` or `output_dir: runs` resolved against the working directory, which is the
# checkout's root under pytest) fails the session; so does a new runs/RUN_ID/. Not deeper, so that files being
# edited meanwhile do not count.
def _checkout_paths() -> set[str]:
    runs = ROOT / "runs"
    top = {x for x in os.listdir(ROOT) if x not in (".pytest_cache", "__pycache__")}  # pytest's and Python's own
    return top | ({f"runs/{x}" for x in os.listdir(runs)} if runs.is_dir() else set())


def pytest_sessionstart(session) -> None:
    session.config._xltune_checkout = _checkout_paths()


def pytest_sessionfinish(session, exitstatus) -> None:
    before = getattr(session.config, "_xltune_checkout", None)
    if before is None:
        return
    new = sorted(_checkout_paths() - before)
    if new:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"tests wrote into the checkout (write under tmp_path instead): {', '.join(new[:10])}", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test when it is not there."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"real benchmark data not found at {path}")
    return path


TINY_TEXT = """\
The quick brown fox jumps over the lazy dog.\tA fast animal leaps over a sleeping dog.
Le renard brun rapide saute par-dessus le chien paresseux.\tUn animal rapide saute.
Der schnelle braune Fuchs springt über den faulen Hund.\tEin schnelles Tier springt.
El rápido zorro marrón salta sobre el perro perezoso.\tUn animal veloz salta.
الثعلب البني السريع يقفز فوق الكلب الكسول.\tحيوان سريع يقفز فوق كلب نائم.
तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।\tएक तेज़ जानवर सोते कुत्ते पर कूदता है।
敏捷的棕色狐狸跳过了懒狗。\t一只快速的动物跳过了一只睡着的狗。
素早い茶色の狐がのろまな犬を飛び越える。\t速い動物が眠っている犬を飛び越える。
สุนัขจิ้งจอกสีน้ำตาลกระโดดข้ามสุนัขขี้เกียจ\tสัตว์ที่รวดเร็วกระโดดข้ามสุนัขที่หลับอยู่
Быстрая коричневая лиса прыгает через ленивую собаку.\tБыстрое животное прыгает через спящую собаку.
Hızlı kahverengi tilki tembel köpeğin üzerinden atlar.\tHızlı bir hayvan uyuyan köpeğin üzerinden atlar.
Mbweha mwepesi wa kahawia anaruka juu ya mbwa mvivu.\tMnyama mwepesi anaruka juu ya mbwa aliyelala.
"""


def _tiny_model_dir(tmp_path_factory, arch: str) -> Path:
    from xltune.models.tiny import make_tiny_model

    root = tmp_path_factory.mktemp(f"tiny-{arch}")
    text = root / "text.tsv"
    text.write_text(TINY_TEXT, encoding="utf-8")
    return make_tiny_model(arch, [text], root / "model", vocab_size=400, hidden=32, layers=2, heads=4, seed=0)


@pytest.fixture(scope="session")
def tiny_xglm_dir(tmp_path_factory) -> Path:
    """A tiny random XGLM (hidden 32, 2 layers) with a Unigram tokenizer trained on 12 languages."""
    return _tiny_model_dir(tmp_path_factory, "xglm")


@pytest.fixture(scope="session")
def tiny_xlmr_dir(tmp_path_factory) -> Path:
    """A tiny random XLM-R (hidden 32, 2 layers) with a Unigram tokenizer trained on 12 languages."""
    return _tiny_model_dir(tmp_path_factory, "xlm-roberta")
