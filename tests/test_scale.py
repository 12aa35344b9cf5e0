"""Scale and reliability: data-parallel runs equal one process; killed sweeps and runs resume exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tiny_data import write_xnli_like
from xltune.store import Store

pytestmark = pytest.mark.slow


# deep prompts + translation and label contrast: the contrastive terms see the whole batch across processes
DCL = ("objectives: [{name: cross_entropy}, {name: translation_contrast, weight: 0.5}, "
       "{name: label_contrast, weight: 0.5}]")


def write_config(path: Path, model_dir, data_dir, store, out, **extra) -> Path:
    method = extra.get("method", "finetune")
    dcl = method.endswith("+dcl")  # e.g. deep_prompt+dcl
    method = method.removesuffix("+dcl")
    lines = [
        f"model: {{name_or_path: {model_dir}, head_dropout: 0.0}}",
        f"method: {{name: {method}}}",
        f"task: {{name: xnli, data_dir: {data_dir}}}",
        "train: {languages: [en], split: dev, shots: %d, epochs: %d, lr: %s, batch_size: 6, dev: {patience: %d}%s}"
        % (extra.get("shots", 4), extra.get("epochs", 2), "1.0e-2" if dcl else "1.0e-3", extra.get("patience", 5),
           ", translations: {languages: [de, sw]}" if dcl else ""),
        "eval: {split: test, languages: all}",
        "seeds: [1]",
        f"store: {store}",
        f"output_dir: {out}",
    ] + ([DCL] if dcl else [])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def xltune(*args, **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "xltune.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def metrics(store) -> dict:
    with Store(store) as s:
        return {(r["run_id"], r["lang"]): r["value"] for r in s.metrics(metric="accuracy")}


@pytest.mark.parametrize("method, shots", [("finetune", 4), ("in_context", 1), ("deep_prompt+dcl", 5)])
def test_two_processes_give_the_same_accuracy_as_one(tiny_xglm_dir, tmp_path, method, shots):
    data = write_xnli_like(tmp_path / "xnli", n_dev=30, n_test=13)  # 13: an odd count, so shards are uneven
    kw = dict(method=method, shots=shots)
    one = write_config(tmp_path / "one.yaml", tiny_xglm_dir, data, tmp_path / "one.sqlite", tmp_path / "r1", **kw)
    two = write_config(tmp_path / "two.yaml", tiny_xglm_dir, data, tmp_path / "two.sqlite", tmp_path / "r2", **kw)
    p1 = xltune("run", str(one))
    out1 = p1.communicate(timeout=300)[0]
    assert p1.returncode == 0, out1
    p2 = xltune("run", str(two), "--processes", "2")
    out2 = p2.communicate(timeout=300)[0]
    assert p2.returncode == 0, out2
    m1, m2 = metrics(tmp_path / "one.sqlite"), metrics(tmp_path / "two.sqlite")
    assert len(m1) == 3 and set(m1) == set(m2)  # same run ids: the config hash ignores the process count
    for k in m1:
        assert m2[k] == pytest.approx(m1[k], abs=1e-9)
    with Store(tmp_path / "two.sqlite") as s:
        (run,) = s.runs()
        assert len(s.runs()) == 1  # only the main process wrote
        assert all(len(s.predictions(run["run_id"], lang, "test")) == 13 for lang in ("en", "de", "sw"))
    if method != "in_context":  # the trained parameters themselves: the same update from one process or two
        from safetensors.torch import load_file

        w1 = load_file(str(tmp_path / "r1" / run["run_id"] / "trainable.safetensors"))
        w2 = load_file(str(tmp_path / "r2" / run["run_id"] / "trainable.safetensors"))
        assert w1.keys() == w2.keys()
        for k in w1:
            assert torch.allclose(w1[k], w2[k], atol=1e-5), k


def wait_for(pred, timeout=240.0, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def test_sigkilled_sweep_resumes_with_every_run_once(tiny_xglm_dir, tmp_path):
    data = write_xnli_like(tmp_path / "xnli")
    grid = ["--grid", "method.name=finetune,deep_prompt", "--grid", "seeds=1,2"]
    killed = write_config(tmp_path / "k.yaml", tiny_xglm_dir, data, tmp_path / "k.sqlite", tmp_path / "rk")
    clean = write_config(tmp_path / "c.yaml", tiny_xglm_dir, data, tmp_path / "c.sqlite", tmp_path / "rc")

    p = xltune("sweep", str(killed), *grid)
    store = tmp_path / "k.sqlite"

    def some_done():
        return store.exists() and 1 <= len(metrics(store)) // 3 < 4

    assert wait_for(some_done, proc=p), p.communicate()[0] if p.poll() is not None else "timeout"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    n_before = len(metrics(store)) // 3
    assert 1 <= n_before < 4

    p = xltune("sweep", str(killed), *grid)
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert f"{n_before} already in the store" in out

    p = xltune("sweep", str(clean), *grid)
    assert p.communicate(timeout=600)[0] is not None and p.returncode == 0
    resumed, reference = metrics(store), metrics(tmp_path / "c.sqlite")
    with Store(store) as s:
        ids = [r["run_id"] for r in s.runs()]
    assert len(ids) == len(set(ids)) == 4  # every run exactly once
    assert resumed == reference  # same run ids (config hashes) and the same metrics


def sweep_workers_alive(folder) -> list[int]:
    """Pids of local sweep workers (``python -m xltune.jobs SPEC``) whose cell lives under ``folder``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "xltune.jobs" in cmd and str(folder) in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_killed_parallel_sweep_leaves_no_worker_behind_and_resumes(tiny_xglm_dir, tmp_path):
    data = write_xnli_like(tmp_path / "xnli", n_dev=60)
    cfg = write_config(tmp_path / "k.yaml", tiny_xglm_dir, data, tmp_path / "k.sqlite", tmp_path / "rk", epochs=100,
                       patience=0)
    grid = ["--grid", "seeds=1,2"]
    p = xltune("sweep", str(cfg), *grid, "--workers", "2")
    lock = tmp_path / "k.sqlite.shards" / "driver.lock"
    assert wait_for(lambda: lock.exists() and lock.read_text() == str(p.pid), proc=p)
    q = xltune("sweep", str(cfg), *grid)  # a second driver on the same store would run the same cells again
    out = q.communicate(timeout=120)[0]
    assert q.returncode == 2 and f"another `xltune sweep` (pid {p.pid}) is running on {tmp_path / 'k.sqlite'}" in out
    assert wait_for(lambda: len(list((tmp_path / "rk").glob("*/resume.pt"))) == 2, proc=p)  # both workers train
    assert len(sweep_workers_alive(tmp_path)) == 2
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert wait_for(lambda: not sweep_workers_alive(tmp_path), timeout=20)  # the workers died with their driver

    p = xltune("sweep", str(cfg), *grid, "--workers", "2")
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert "sweep: 2 runs, 0 already in the store, 2 to run" in out
    logs = sorted((tmp_path / "k.sqlite.shards" / "logs").glob("*.log"))
    assert len(logs) == 2 and all("resumed from" in log.read_text() for log in logs)
    with Store(tmp_path / "k.sqlite") as s:
        assert len(s.runs()) == 2
    assert list((tmp_path / "k.sqlite.shards").glob("*.sqlite")) == []


def test_run_killed_mid_training_resumes_from_its_checkpoint(tiny_xglm_dir, tmp_path):
    data = write_xnli_like(tmp_path / "xnli", n_dev=60)
    # no early stopping and many epochs: the kill lands mid-training
    kw = dict(epochs=200, patience=0)
    cfg = write_config(tmp_path / "k.yaml", tiny_xglm_dir, data, tmp_path / "k.sqlite", tmp_path / "rk", **kw)
    ref = write_config(tmp_path / "c.yaml", tiny_xglm_dir, data, tmp_path / "c.sqlite", tmp_path / "rc", **kw)
    p = xltune("run", str(cfg))
    ckpts = lambda: list((tmp_path / "rk").glob("*/resume.pt"))  # noqa: E731
    assert wait_for(lambda: bool(ckpts()), proc=p)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (tmp_path / "k.sqlite").exists() or not metrics(tmp_path / "k.sqlite")  # nothing half-written
    p = xltune("run", str(cfg))
    out = p.communicate(timeout=600)[0]
    assert p.returncode == 0, out
    assert "resumed from" in out
    p = xltune("run", str(ref))
    assert p.communicate(timeout=600)[0] is not None and p.returncode == 0
    assert metrics(tmp_path / "k.sqlite") == metrics(tmp_path / "c.sqlite")
    assert not ckpts()  # the resume checkpoint is removed once the run is stored


def test_resumed_training_samples_the_same_translations(tmp_path):
    """The contrastive objective's own sampling stream (which translation of a shot a step uses) is part of the
    resume checkpoint: a run that crashed after epoch 1 and resumed draws what an uninterrupted run draws."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    from xltune.config import TrainConfig
    from xltune.data.encode import Encoded, Feature
    from xltune.train import task_loss, train

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = torch.nn.EmbeddingBag(20, 3, mode="sum")

        def forward(self, input_ids, attention_mask):
            return SimpleNamespace(logits=self.emb(input_ids, per_sample_weights=attention_mask.float()))

    class Crash(Exception):
        pass

    class Sampling:
        """A loss with its own sampling stream (as the translation-reading objectives have)."""

        def __init__(self, picks, crash_at=None):
            self.gen, self.picks, self.crash_at = torch.Generator().manual_seed(99), picks, crash_at

        def __call__(self, model, out, batch, part, *, label_scale, batch_scale, **_):
            if self.crash_at is not None and len(self.picks) == self.crash_at:
                raise Crash
            self.picks.append(int(torch.randint(1000, (1,), generator=self.gen)))
            return task_loss(out.logits, batch["labels"]) * label_scale

        def state_dict(self):
            return {"generator": self.gen.get_state()}

        def load_state_dict(self, state):
            self.gen.set_state(state["generator"])

    def extra(picks, crash_at=None):
        return Sampling(picks, crash_at)

    data = Encoded([Feature([1 + i % 7, 2 + i % 5], i % 3, i) for i in range(12)], 12)
    cfg = TrainConfig(epochs=3, batch_size=4, lr=1e-2)
    kw = dict(seed=1, token_task=False, pad_id=0, padding_side="right", log=lambda *_: None)
    full: list[int] = []
    train(Tiny(), data, cfg, accelerator=Accelerator(cpu=True), loss=extra(full), **kw)
    assert len(full) == 9  # 3 epochs x 3 batches
    ckpt, before = tmp_path / "resume.pt", []
    with pytest.raises(Crash):  # dies in epoch 2, after the epoch-1 checkpoint
        train(Tiny(), data, cfg, accelerator=Accelerator(cpu=True), loss=extra(before, crash_at=4),
              resume_path=ckpt, **kw)
    after: list[int] = []  # a new process builds the objective afresh, from the seed
    train(Tiny(), data, cfg, accelerator=Accelerator(cpu=True), loss=extra(after), resume_path=ckpt, **kw)
    assert before[:3] + after == full
