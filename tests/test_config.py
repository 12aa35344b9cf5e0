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


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # ISSUE_CONFIG's ../shared/data/xnli is relative to its file (in tmp_path); from the checkout, where ../shared may
    # exist, it would read as written for the working directory (an error that names the fix, tested below)
    monkeypatch.chdir(tmp_path)


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
    ("eval.languages={a: 1}", "eval.languages must be a list (e.g. [a, b]) or a string"),
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


def test_an_empty_config_file_is_an_empty_mapping(tmp_path):
    for text in ("", "# nothing yet\n\n"):
        cfg = load_config(write(tmp_path, text), ["model.name_or_path=m"])
        assert cfg == load_config(None, ["model.name_or_path=m"])  # every key from the command line and defaults


@pytest.mark.parametrize("override, expected", [
    ("seeds=1,2,3", [1, 2, 3]), ("seeds=[1, 2, 3]", [1, 2, 3]), ("seeds=4", [4]),
    ("train.languages=en,de", ["en", "de"]), ("train.languages=de", ["de"]),
    ("eval.languages=de,sw", ["de", "sw"]), ("eval.languages=sw", ["sw"]), ("eval.languages=all", "all"),
    ("task.labels=pos,neg", ["pos", "neg"]), ("method.target_modules=q_proj,v_proj", ["q_proj", "v_proj"]),
])
def test_lists_as_the_grid_writes_them(tmp_path, override, expected):
    """`a,b,c` (as --grid takes values) and a single value are lists wherever a key takes a list."""
    sets = ["method.name=lora"] if override.startswith("method.") else []
    cfg = load_config(write(tmp_path, ISSUE_CONFIG), sets + [override])
    key = override.split("=", 1)[0]
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    assert node == expected


def test_a_bad_list_item_shows_the_list_form(tmp_path):
    with pytest.raises(XLTuneError) as e:
        load_config(write(tmp_path, ISSUE_CONFIG), ["seeds=1,2,x"])
    assert "seeds must be a list of integers, e.g. seeds=[1, 2, 3] (or 1,2,3 on the command line), got '1,2,x'" \
        in str(e.value) and "'x'" in str(e.value)
    with pytest.raises(XLTuneError, match=r"seeds must be a list, e\.g\. seeds=\[1, 2, 3\]"):
        load_config(write(tmp_path, ISSUE_CONFIG), ["seeds={a: 1}"])


def _layout(tmp_path):
    """project/exp/c.yaml naming ../data, ../model (a folder) and out/ relative to its folder; cwd elsewhere."""
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "project" / "model").mkdir()
    (tmp_path / "project" / "exp").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return write(tmp_path / "project" / "exp", (
        "model: {name_or_path: ../model}\ntask: {name: xnli, data_dir: ../data, template: my_template.yaml}\n"
        "train: {translations: {parallel_file: ../data/par.tsv}}\n"
        "store: out/r.sqlite\noutput_dir: out/runs\n"))


def test_paths_in_a_config_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    import os

    path = _layout(tmp_path)
    project = tmp_path / "project"
    keys = set()
    for cwd in (tmp_path / "elsewhere", project, project / "exp"):
        monkeypatch.chdir(cwd)
        cfg = resolve_paths(load_config(os.path.relpath(path, cwd)))  # the config named relative to the cwd
        assert cfg.model.name_or_path == str(project / "model") and cfg.task.data_dir == str(project / "data")
        assert cfg.task.template == str(project / "exp" / "my_template.yaml")
        assert cfg.train.translations.parallel_file == str(project / "data" / "par.tsv")
        assert cfg.store == str(project / "exp" / "out" / "r.sqlite")
        assert cfg.output_dir == str(project / "exp" / "out" / "runs")
        keys.add(cfg.run_key(1))
    assert len(keys) == 1  # the run does not depend on where it was started from
    # the same experiment with absolute paths on the command line: the same run (paths are absolute before the key)
    absolute = load_config(None, [f"model.name_or_path={project / 'model'}", "task.name=xnli",
                                  f"task.data_dir={project / 'data'}",
                                  f"task.template={project / 'exp' / 'my_template.yaml'}",
                                  f"train.translations.parallel_file={project / 'data' / 'par.tsv'}"])
    assert absolute.run_key(1) in keys
    # values from the command line (and the defaults) are relative to the working directory
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = resolve_paths(load_config(path, ["store=mine.sqlite", "task.data_dir=../project/data"]))
    assert cfg.store == str(tmp_path / "elsewhere" / "mine.sqlite") and cfg.task.data_dir == str(project / "data")
    assert cfg.run_key(1) in keys


def test_a_path_written_for_the_working_directory_names_the_fix(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "configs").mkdir()
    cfg_file = write(tmp_path / "configs", "model: {name_or_path: m}\ntask: {name: xnli, data_dir: data}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(XLTuneError) as e:
        load_config(cfg_file)
    assert "task.data_dir 'data' is relative to the config file's folder" in str(e.value)
    assert "write '../data'" in str(e.value) and "c.yaml" in str(e.value)


def test_a_plans_own_overrides_are_relative_to_the_plan(tmp_path, monkeypatch):
    from xltune.sweep import expand_plan

    path = _layout(tmp_path)
    (tmp_path / "project" / "other").mkdir()
    plan = write(path.parent, "sweep:\n  - config: c.yaml\n    set: [task.data_dir=../other, train.shots=4]\n"
                              "    grid: {seeds: [1, 2]}\n", "plan.yaml")
    monkeypatch.chdir(tmp_path / "elsewhere")
    cells = expand_plan(plan)
    assert [c.seed for c in cells] == [1, 2]
    assert {c.config.task.data_dir for c in cells} == {str(tmp_path / "project" / "other")}
    assert {c.config.train.shots for c in cells} == {4}
