"""The report on a constructed store: files written, images embedded, sections present; headless-Chromium render."""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from xltune.analysis.tokstats import TokStats, write_tokstats_csv
from xltune.commands import report as cmd
from xltune.errors import XLTuneError
from xltune.report import build_report
from xltune.store import MetricRow, RunRecord, Store

LANGS = {"en": 0.80, "de": 0.72, "sw": 0.55, "th": 0.60, "yo": 0.45}  # base accuracy; yo is unseen by XGLM
METHOD_LIFT = {"finetune": 0.0, "lora": 0.03, "deep_prompt": 0.06}
ENV = {"python": "3.11.9", "torch": "2.13.0", "transformers": "5.24.0", "peft": "0.21.2", "device": "cpu"}


def _fill(path, with_predictions: bool = True) -> None:
    rng = np.random.default_rng(0)
    n = 200
    gold = {lg: np.random.default_rng(k).integers(0, 3, n) for k, lg in enumerate(LANGS)}
    with Store(path) as store:
        for shots, shot_lift in (("16", 0.0), ("32", 0.04)):
            for method, lift in METHOD_LIFT.items():
                for seed in (1, 2, 3):
                    metrics, preds = [], {}
                    for lg, base in LANGS.items():
                        correct = rng.random(n) < min(0.95, base + lift + shot_lift)
                        pred = np.where(correct, gold[lg], (gold[lg] + 1) % 3)
                        metrics.append(MetricRow(lg, "test", "accuracy", float(correct.mean()), n))
                        if with_predictions:
                            preds[(lg, "test")] = [(i, str(g), str(p)) for i, (g, p) in enumerate(zip(gold[lg], pred))]
                    store.write_run(RunRecord(
                        run_id=f"xnli-{method}-{shots}-{seed}", seed=seed, task="xnli", method=method,
                        objective="none", model="tiny-xglm", shots=shots, source_langs=["en"], config={},
                        manifest={}, env=ENV, metrics=metrics, predictions=preds))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    _fill(d / "r.sqlite")
    toks = [TokStats(lg, 10, 100, 500, int(100 * f), "word", "", f, 0.3, 0.0, 5 / f)
            for lg, f in {"en": 1.2, "de": 1.5, "sw": 2.0, "yo": 2.4}.items()]
    toks.append(TokStats("th", 10, 20, 500, 300, "char", "Thai", 0.6, float("nan"), 0.0, 1.7))
    write_tokstats_csv(toks, d / "tok.csv")
    paths = build_report(d / "r.sqlite", d / "out", tokstats=d / "tok.csv", n_resamples=100, progress=False)
    return paths


def test_report_writes_markdown_html_and_embeds_images(report):
    md = report["markdown"].read_text()
    page = report["html"].read_text()
    n_fig = len(list((report["markdown"].parent / "figures").glob("*.png")))
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # bars per (shots) cell + shots curve + gain-vs-resources and gain-vs-fertility per method pair and K
    assert n_fig == len(imgs) == 2 + 1 + 2 * 2 * 2
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    assert "<script" not in page
    for section in ("Results per language", "Score vs number of shots", "Resource groups", "Significance (vs finetune)",
                    "Claims", "Environment"):
        assert section in md and section in page
    assert "C1: " in md and "| supported |" in md  # the claims section has its verdicts
    assert "C8: XGLM is decoder-only" not in md  # a claim about model configs: the report reads only the store
    assert "transformers" in md and "5.24.0" in md  # environment manifest
    assert "1 language(s) without log10 pretraining tokens skipped (yo)" in md
    assert "whitespace-free languages" in md and "(th)" in md  # th has no word-level fertility
    sig_rows = [line for line in md.splitlines()
                if line.startswith("| xnli | tiny-xglm | 16 | deep_prompt | finetune | avg |")]
    assert len(sig_rows) == 1
    diff = float(sig_rows[0].split("|")[7])
    assert diff > 0  # deep_prompt was built 6 points better


def test_report_without_predictions_or_tokstats_explains_instead_of_crashing(tmp_path):
    _fill(tmp_path / "r.sqlite", with_predictions=False)
    paths = build_report(tmp_path / "r.sqlite", tmp_path / "out", n_resamples=50, progress=False)
    md = paths["markdown"].read_text()
    assert "no stored predictions for" in md and "pass --tokstats" in md
    assert paths["html"].is_file()


def test_cli_and_user_errors(tmp_path, capsys):
    _fill(tmp_path / "r.sqlite", with_predictions=False)
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["report", "--store", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "o"),
                              "--baseline", "lora", "--resamples", "20", "--no-progress"])
    assert args.func(args) == 0 and "report.html" in capsys.readouterr().out
    assert "Significance (vs lora)" in (tmp_path / "o" / "report.md").read_text()
    with pytest.raises(XLTuneError, match="unknown baseline method or variant 'lorra'.*valid: lora"):
        build_report(tmp_path / "r.sqlite", tmp_path / "o2", baseline="lorra", progress=False)
    with pytest.raises(XLTuneError, match="does not exist"):
        build_report(tmp_path / "missing.sqlite", tmp_path / "o3", progress=False)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0"]


@pytest.mark.skipif(_chromium() is None, reason="chromium not on PATH")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "report.png"
    url = report["html"].resolve().as_uri()
    env = {**os.environ, "HOME": str(tmp_path)}  # a private profile folder
    res = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--window-size=1200,2400", f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120, env=env)
    assert shot.is_file(), res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 1000 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05  # not a blank page: text, tables and plots
    dom = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, env=env)
    assert dom.stdout.count("<img") == report["html"].read_text().count("<img") > 0
    assert "Significance" in dom.stdout
    print(f"screenshot: {shot}")


def test_variance_split_section_when_shot_and_init_seeds_cross(tmp_path):
    """Runs of one variant over shot seeds x initialisation seeds: the report splits their variance."""
    from xltune.report import build_report

    path = tmp_path / "r.sqlite"
    shot_effect, init_effect = {1: 0.0, 2: 0.08, 3: -0.08}, {1: 0.01, 2: -0.01, 3: 0.0}
    with Store(path) as s:
        for shot in (1, 2, 3):
            for seed in (1, 2, 3):
                acc = 0.6 + shot_effect[shot] + init_effect[seed]
                s.write_run(RunRecord(
                    run_id=f"r{shot}{seed}", seed=seed, task="xnli", method="finetune", objective="none",
                    model="m", shots="16", source_langs=["en"], config={}, manifest={}, env={},
                    metrics=[MetricRow(lang, "test", "accuracy", acc, 100) for lang in ("en", "de")],
                    variant="v1", variant_label="finetune lr=0.01", shot_seed=shot))
    md = build_report(path, tmp_path / "out", n_resamples=20, progress=False)["markdown"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| xnli finetune lr=0.01 | 3 x 3 |"))
    assert "| 98 % | 2 % | 0 % |" in row  # components 0.0064 vs 0.0001: the shot sample explains 98.5 %
