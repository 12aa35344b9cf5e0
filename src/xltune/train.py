"""The training loop: AdamW, linear warmup + decay, gradient accumulation, mixed precision (accelerate),
early stopping on a dev score, and the best trainable parameters kept.

Knows nothing of tasks beyond the batch format (input_ids, attention_mask, labels), and nothing of objectives beyond
the :class:`TrainLoss` interface (a run's :class:`xltune.objectives.base.ObjectiveSet`). The loss of one optimizer
step is the mean over the *global* batch (examples, or labelled tokens for tagging), however the batch is split
into micro-batches and processes, so gradient accumulation and data parallelism give the same update as one big
batch.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .config import TrainConfig
from .data.encode import IGNORE, Encoded, collate, model_inputs, train_batches



class TrainLoss(Protocol):
    """The loss of one micro-batch and the state a resumed run must continue from (e.g. a sampling stream).

    ``label_scale`` = processes / labelled items of the global batch (for sums over labelled items);
    ``batch_scale`` = processes x micro-batch rows / global batch rows (for means over the micro-batch)."""

    def __call__(self, model, out, batch: dict, part: list[int], *, label_scale: float, batch_scale: float,
                 batch_positions: list[int], world: int, step: int) -> torch.Tensor: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class TaskLoss:
    """Cross-entropy alone (the loss when a caller gives none)."""

    def __call__(self, model, out, batch, part, *, label_scale, batch_scale, **_):
        return task_loss(out.logits, batch["labels"]) * label_scale

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class TrainResult:
    steps: int = 0
    epochs: int = 0
    best_score: float | None = None
    best_step: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    averaged: int = 0  # checkpoint averaging: how many evaluation points' weights were averaged


def resolve_mixed_precision(mixed_precision: str) -> str:
    """'auto' -> 'bf16' on a CUDA device that supports it, else 'no' (accelerate's names)."""
    if mixed_precision == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return mixed_precision


def autocast_dtype(mixed_precision: str) -> torch.dtype | None:
    return {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[resolve_mixed_precision(mixed_precision)]


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy (the caller divides by the global count); -100 labels are ignored."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def train(
    model: torch.nn.Module,
    data: Encoded,
    cfg: TrainConfig,
    *,
    seed: int,
    token_task: bool,
    pad_id: int,
    padding_side: str,
    accelerator: Accelerator,
    dev_score: Callable[[], float] | None = None,
    loss: TrainLoss | None = None,
    resume_path: Path | None = None,
    log: Callable[[str], None] = print,
    average_last: int = 0,
    track: Callable[[dict, int], None] | None = None,
) -> TrainResult:
    """Train ``model``'s trainable parameters in place; at the end the best dev state (if any) is restored, or, with
    ``average_last`` N > 0, the average of the trainable weights at the last N evaluation points (epoch ends, or
    every ``eval_every`` steps): checkpoint averaging, a selection-free alternative to a source-language dev set
    (Schmidt et al. 2023, "Free Lunch: Robust Cross-Lingual Transfer via Model Checkpoint Averaging").

    With several processes (accelerate launch), every process draws the same global batch from the shared seed and
    takes its share (positions rank::world); DDP averages gradients, so the loss is scaled to the global mean.
    ``track(values, step)`` (experiment trackers; every process gets it) hears the global batch's loss and the learning
    rate after every step and the dev score after every evaluation.
    """
    acc = accelerator
    device = acc.device
    result = TrainResult()
    start = time.perf_counter()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise RuntimeError("the method left no trainable parameters")
    head_lr = cfg.head_lr or cfg.lr
    groups = [
        {"params": [p for n, p in trainable if not n.startswith("head.")], "lr": cfg.lr},
        {"params": [p for n, p in trainable if n.startswith("head.")], "lr": head_lr},
    ]
    groups = [g for g in groups if g["params"]]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, fused=fused)
    n = len(data.features)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    ddp_model, optimizer = acc.prepare(model, optimizer)
    world, rank = acc.num_processes, acc.process_index
    gen = torch.Generator().manual_seed(seed)
    loss_fn = loss if loss is not None else TaskLoss()
    micro = cfg.batch_size // cfg.grad_accum

    best_state: dict[str, torch.Tensor] | None = None
    snapshots: list[dict[str, torch.Tensor]] = []  # checkpoint averaging: the last N evaluation points' weights
    bad_evals = 0
    first_epoch = 1
    if resume_path is not None and resume_path.exists():
        state = torch.load(resume_path, map_location="cpu", weights_only=False)
        with torch.no_grad():
            for k, p in trainable:
                p.copy_(state["params"][k].to(p.device))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        loss_fn.load_state_dict(state.get("loss") or {})  # e.g. which translation an objective samples next
        _set_rng_states(state["rng"])
        best_state, bad_evals = state["best_state"], state["bad_evals"]
        snapshots = state.get("snapshots") or []
        for k in ("steps", "epochs", "best_score", "best_step", "history"):
            setattr(result, k, state["result"][k])
        first_epoch = result.epochs + 1
        log(f"  resumed from {resume_path} at epoch {first_epoch} (step {result.steps})")
        if state.get("finished"):
            first_epoch = cfg.epochs + 1  # training had ended; only evaluation was left

    def checkpoint(finished: bool = False) -> None:
        """Everything needed to continue exactly: written to a temp file, then renamed (atomic)."""
        if resume_path is None or not acc.is_main_process:
            return
        state = {
            "params": {k: p.detach().cpu() for k, p in trainable}, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "generator": gen.get_state(), "rng": _get_rng_states(),
            "loss": loss_fn.state_dict(),
            "best_state": best_state, "bad_evals": bad_evals, "finished": finished, "snapshots": snapshots,
            "result": {k: getattr(result, k) for k in ("steps", "epochs", "best_score", "best_step", "history")},
        }
        resume_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = resume_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, resume_path)

    def evaluate_now(epoch: int) -> bool:
        """Dev evaluation; returns True when early stopping says stop."""
        nonlocal best_state, bad_evals
        if average_last:
            snapshots.append({k: p.detach().to("cpu", copy=True) for k, p in trainable})
            del snapshots[:-average_last]
        if dev_score is None:
            return False
        score = dev_score()
        model.train()
        result.history.append({"step": result.steps, "epoch": epoch, "dev": score})
        if result.best_score is None or score > result.best_score:
            result.best_score, result.best_step, bad_evals = score, result.steps, 0
            best_state = {k: p.detach().to("cpu", copy=True) for k, p in trainable}
        else:
            bad_evals += 1
        log(f"  step {result.steps:>5}  epoch {epoch:>3}  dev {100 * score:6.2f}%"
            + ("  *" if result.best_step == result.steps else ""))
        if track is not None:
            track({"dev/score": score, "dev/best": result.best_score}, result.steps)
        return cfg.dev.patience > 0 and bad_evals >= cfg.dev.patience

    model.train()
    stop = False
    # a progress bar on the main process when the log goes to a terminal (not in tests, not in CI logs)
    bar = tqdm(total=total, initial=result.steps, desc="train", unit="step", leave=False,
               disable=not (acc.is_main_process and sys.stderr.isatty()))
    for epoch in range(first_epoch, cfg.epochs + 1):
        for batch_pos in train_batches(n, cfg.batch_size, gen):
            feats = [data.features[i] for i in batch_pos]
            count = sum(sum(x != IGNORE for x in f.label) for f in feats) if token_task else len(feats)
            count = max(count, 1)
            mine = batch_pos[rank::world]
            parts = [mine[s : s + micro] for s in range(0, len(mine), micro)] or [[]]
            step_loss = torch.zeros((), device=device)
            for j, part in enumerate(parts):
                last = j == len(parts) - 1
                sync = acc.no_sync(ddp_model) if (world > 1 and not last) else nullcontext()
                with sync:
                    if not part:  # fewer examples than processes: join the all-reduce with a zero gradient
                        value = sum(p.sum() for _, p in trainable) * 0.0
                        if hasattr(loss_fn, "join"):  # and whatever the objectives do across processes
                            loss_fn.join(model, batch_pos, world, step=result.steps)
                    else:
                        batch = collate([data.features[i] for i in part], pad_id, padding_side, token_task)
                        batch = {k: v.to(device) for k, v in batch.items()}
                        with acc.autocast():
                            out = ddp_model(**model_inputs(batch))
                            value = loss_fn(model, out, batch, part, label_scale=world / count,
                                            batch_scale=len(part) * world / len(batch_pos),
                                            batch_positions=batch_pos, world=world, step=result.steps)
                    acc.backward(value)
                    step_loss += value.detach().float()
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_([p for _, p in trainable], cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.steps += 1
            bar.update(1)
            if track is not None:
                # each process's summed terms are world x its share of the global mean: their mean is the mean
                track({"train/loss": float(acc.reduce(step_loss, "mean")), "train/lr": scheduler.get_last_lr()[0]},
                      result.steps)
            if cfg.eval_every and result.steps % cfg.eval_every == 0 and evaluate_now(epoch):
                stop = True
            if stop or (cfg.max_steps and result.steps >= cfg.max_steps):
                stop = True
                break
        result.epochs = epoch
        if not stop and not cfg.eval_every and evaluate_now(epoch):
            stop = True
        checkpoint(finished=stop or epoch == cfg.epochs)
        if stop:
            result.stopped_early = result.steps < total
            break
    bar.close()
    if average_last and snapshots:
        with torch.no_grad():
            for k, p in trainable:
                p.copy_((sum(s[k].float() for s in snapshots) / len(snapshots)).to(p.dtype).to(p.device))
        result.averaged = len(snapshots)
    elif best_state is not None:
        with torch.no_grad():
            for k, p in trainable:
                p.copy_(best_state[k].to(p.device))
    result.seconds = time.perf_counter() - start
    return result


def _get_rng_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
