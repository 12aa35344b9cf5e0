"""Config loading: YAML + --set overrides, validation with clear messages, stable run keys."""

from __future__ import annotations

import pytest

from xltune.config import ExperimentConfig, apply_override, describe, load_config, resolve_paths
from xltune.errors import XLTuneError

ISSUE_CONFIG = """\
model: {name_or_path: PATH_TO_A_MODEL_DIR}
method: {name: deep_prompt, prefix_length: 16}
task: {name: xnli, data_dir: ../shared/data/xnli}
train: {languages: [en], split: dev, shots: 16, epochs: 20, lr: 1.0e-2, batch_size: 16}
eval: {split: test, languages: all}
seeds: [1, 2]
store: results.sqlite
"""


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_issue_config_loads_as_written(tmp_path):
    cfg = load_config(write(tmp_path, ISSUE_CONFIG))
    assert cfg.method.name == "deep_prompt" and cfg.method.prefix_length == 16
    assert cfg.train.shots == 16 and cfg.train.lr == pytest.approx(1e-2) and cfg.train.split == "dev"
    assert cfg.eval.languages == "all" and cfg.seeds == [1, 2]
    # round trip through the stored form
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(write(tmp_path, ISSUE_CONFIG),
                      ["method.name=finetune", "train.shots=all", "train.languages=[en, de]", "train.dev.patience=2",
                       "model.gradient_checkpointing=true"])
    assert cfg.method.name == "finetune" and cfg.train.shots == "all"
    assert cfg.train.languages == ["en", "de"] and cfg.train.dev.patience == 2
    assert cfg.model.gradient_checkpointing is True


@pytest.mark.parametrize("override, expected", [
    ("trian.shots=3", "unknown config key 'trian'"),
    ("train.shtos=3", "train.shots"),  # closest match listed first
    ("train.shots=many", "train.shots must be a positive integer or 'all'"),
    ("train.shots=0", "train.shots must be a positive integer"),
    ("train.lr=fast", "train.lr must be a number"),
    ("train.batch_size=3.5", "train.batch_size must be an integer"),
    ("model.pooling=max", "unknown value for model.pooling 'max'"),
    ("eval.languages=some", "eval.languages must be a list"),
    ("seeds=[]", "seeds must list at least one seed"),
    ("train.grad_accum=3", "must be a multiple of train.grad_accum"),
])
def test_bad_values_name_the_key(tmp_path, override, expected):
    with pytest.raises(XLTuneError) as e:
        load_config(write(tmp_path, ISSUE_CONFIG), [override])
    assert expected in str(e.value)
    assert "c.yaml" in str(e.value) or "unknown" in str(e.value)


def test_unknown_key_lists_closest_first(tmp_path):
    with pytest.raises(XLTuneError) as e:
        load_config(write(tmp_path, ISSUE_CONFIG), ["train.shtos=3"])
    valid = str(e.value).split("valid: ")[1]
    assert valid.startswith("train.shots")


@pytest.mark.parametrize("text, expected", [
    ("", "is empty"),
    ("- a\n- b\n", "expected a mapping"),
    ("model: {name_or_path: x\n", "not valid YAML"),
    ("model: 3\n", "model must be a mapping"),
])
def test_bad_files(tmp_path, text, expected):
    with pytest.raises(XLTuneError) as e:
        load_config(write(tmp_path, text))
    assert expected in str(e.value) and "c.yaml" in str(e.value)


def test_missing_file_and_bom(tmp_path):
    with pytest.raises(XLTuneError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "bom.yaml"
    p.write_bytes("\ufeff".encode() + ISSUE_CONFIG.encode())
    assert load_config(p).task.name == "xnli"


def test_run_key_stable_and_sensitive(tmp_path):
    a = load_config(write(tmp_path, ISSUE_CONFIG))
    b = load_config(write(tmp_path, ISSUE_CONFIG), ["eval.batch_size=7", "store=other.sqlite"])
    c = load_config(write(tmp_path, ISSUE_CONFIG), ["method.prefix_length=8"])
    assert a.run_key(1) == b.run_key(1)  # batch size and store do not change results
    assert a.run_key(1) != a.run_key(2)
    assert a.run_key(1) != c.run_key(1)


def test_resolve_paths_makes_them_absolute(tmp_path):
    cfg = resolve_paths(load_config(write(tmp_path, ISSUE_CONFIG)), base=tmp_path)
    assert cfg.store == str(tmp_path / "results.sqlite")
    assert cfg.task.data_dir == str((tmp_path / "../shared/data/xnli").resolve())
    assert cfg.model.name_or_path == "PATH_TO_A_MODEL_DIR"  # not a local path: kept as a hub id


def test_describe_covers_every_section():
    keys = {k for k, _, _ in describe()}
    assert {"model.name_or_path", "train.dev.patience", "objectives[].temperature", "method.prefix_length",
            "method.r", "train.translations.languages", "seeds"} <= keys
    assert all(h for _, _, h in describe())  # every key has help text


def test_apply_override_rejects_garbage():
    with pytest.raises(XLTuneError, match="key.sub=value"):
        apply_override({}, "no-equals-sign")
