"""``xltune lang-module train``: one language module trained by language modelling on that language's text.

Decoders learn by causal LM (next token), encoders by masked LM (15 % of the tokens: 80 % ``<mask>``, 10 % a random
token, 10 % kept), through the checkpoint's own LM head, frozen like the rest of the model. An encoder checkpoint
without its MLM head (multilingual-e5 is a bare ``BertModel``) gets a fresh one, tied to the input embeddings:
it is fitted alone first (``head_steps``, on the model without the module), then trains with the module; the
manifest says so, and the head is kept beside the module (``mlm_head.safetensors``; tasks never use it).

Only the module trains: bottleneck adapters (+ an invertible adapter on the token embeddings, whose inverse runs
before the tied output projection), a deep prefix, or LoRA (peft). One line of text is one example (from position 0,
as a task example is fed), truncated to ``max_length``; batches group lines of similar length.

Resumable: every ``save_every`` steps the state (module, head, optimizer, step, loss curve) is written to
``resume.pt`` in the module's folder; the same command continues from it. The data order is fixed by the seed in
advance and every step seeds its own randomness (masking, dropout), so a resumed run computes what an uninterrupted
one would. A finished folder (its manifest written last) is skipped by the same command; other settings into the
same folder are refused unless ``fresh``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import __version__
from ..errors import XLTuneError
from .config import DEFAULT_LR, ModuleTrainConfig  # noqa: F401  (torch-free: the CLI reads its fields)
from .modules import MANIFEST, SLOT, is_language_param, model_fingerprint, write_module
from .text import file_sha256, read_lines

RESUME = "resume.pt"
JOB = "job.json"
HEAD = "mlm_head.safetensors"
# -- the model with its module -----------------------------------------------------------------------------------
def add_module(backbone, cfg: ModuleTrainConfig) -> tuple[dict[str, nn.Parameter], dict, nn.Module | None]:
    """Add the module to ``backbone``; ``(params keyed as the module file names them, architecture, prompt)``."""
    arch = cfg.architecture()
    prompt = None
    if cfg.kind == "adapter":
        from ..models.adapters import add_adapters, add_invertible

        arch["placement"] = add_adapters(backbone, {SLOT: cfg.reduction_factor})
        if cfg.invertible:
            add_invertible(backbone, SLOT, cfg.invertible_reduction_factor)
        params = {n: p for n, p in backbone.model.named_parameters() if is_language_param(n)}
    elif cfg.kind == "prefix":
        from ..models.prompts import DeepPrompt

        layers, kv_heads, head_dim = backbone.require_layer_layout("a prefix module")
        prompt = DeepPrompt(layers, kv_heads, head_dim, cfg.prefix_length, backbone.hidden_size)
        prompt.to(backbone.model.get_input_embeddings().weight.device)
        params = {"embedding.weight": prompt.embedding.weight}
    else:
        from peft import LoraConfig, inject_adapter_in_model

        from ..methods.base import default_targets
        from ..methods.lora import EXTRA_TARGETS

        targets = default_targets(backbone, cfg.target_modules, "lora module",
                                  "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING", EXTRA_TARGETS)
        arch["target_modules"] = list(targets)
        try:
            inject_adapter_in_model(LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=0.0,
                                               target_modules=targets), backbone.model, adapter_name=SLOT)
        except ValueError as e:
            raise XLTuneError(f"lang-module train --kind lora: {e}") from None
        params = {n: p for n, p in backbone.model.named_parameters() if is_language_param(n)}
    for p in params.values():
        p.requires_grad_(True)
    return params, arch, prompt


class LMObjective:
    """Causal or masked LM loss of a batch through the frozen LM head (the invertible adapter's inverse first)."""

    def __init__(self, backbone, lm: nn.Module, cfg: ModuleTrainConfig):
        self.backbone, self.lm, self.cfg = backbone, lm, cfg
        self.masked = not backbone.is_decoder
        tok = backbone.tokenizer
        if self.masked:
            if tok.mask_token_id is None:
                raise XLTuneError(f"{backbone.name}: its tokenizer has no mask token; masked LM needs one")
            heads = [m for _, m in lm.named_children() if m is not lm.base_model]
            if len(heads) != 1:
                raise XLTuneError(f"{backbone.name}: cannot tell its MLM head ({type(lm).__name__} has "
                                  f"{len(heads)} modules beside the base model)")
            self.head = heads[0]
            self.special = torch.tensor(sorted(set(tok.all_special_ids)))
        else:
            self.head = lm.get_output_embeddings()
        self.vocab = lm.get_output_embeddings().weight.shape[0]
        self.inverse_hook = None

    def use_invertible(self) -> None:
        """Run the invertible adapter's inverse on the hidden state before the output projection (MAD-X)."""
        from ..models.adapters import invertible_of

        inv = invertible_of(self.backbone)
        if inv is None or self.inverse_hook is not None:
            return

        def inverse(_module, args):
            h = args[0]
            for coupling in reversed(list(inv.values())):
                h = coupling.inverse(h)
            return (h, *args[1:])

        self.inverse_hook = self.lm.get_output_embeddings().register_forward_pre_hook(inverse)

    def __call__(self, model, ids: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if not self.masked:
            hidden = model(ids, mask).hidden
            logits = self.head(hidden[:, :-1]).float()
            target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
        inputs, chosen = self.mask_tokens(ids, mask, gen)
        hidden = model(inputs, mask).hidden
        logits = self.head(hidden[chosen]).float()
        return F.cross_entropy(logits, ids[chosen])

    def mask_tokens(self, ids: torch.Tensor, mask: torch.Tensor, gen: torch.Generator):
        """BERT's recipe; every row gets at least one masked token."""
        can = (mask == 1) & ~torch.isin(ids, self.special.to(ids.device))
        draw = torch.rand(ids.shape, generator=gen).to(ids.device)
        chosen = can & (draw < self.cfg.mlm_probability)
        first = torch.where(can, draw, 2.0).argmin(dim=1)  # the row's lowest draw, if nothing was chosen
        rows = torch.arange(ids.shape[0], device=ids.device)
        chosen[rows, first] |= can[rows, first]
        how = torch.rand(ids.shape, generator=gen).to(ids.device)
        inputs = ids.clone()
        inputs[chosen & (how < 0.8)] = self.backbone.tokenizer.mask_token_id
        swap = chosen & (how >= 0.8) & (how < 0.9)
        inputs[swap] = torch.randint(0, self.vocab, ids.shape, generator=gen).to(ids.device)[swap]
        return inputs, chosen


# -- data --------------------------------------------------------------------------------------------------------
def encode_lines(tokenizer, lines: list[str], max_length: int) -> list[list[int]]:
    if not lines:
        return []
    ids = tokenizer(lines, truncation=True, max_length=max_length)["input_ids"]
    return [x for x in ids if len(x) >= 3]  # a special token or two and at least one real token


def schedule(lengths: list[int], batch_size: int, steps: int, seed: int, group: int = 8) -> list[list[int]]:
    """Every step's line indices, fixed in advance by the seed: epochs of random order, each ``group`` batches
    sorted by length before they are cut (less padding), the batches of a group in random order."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    out: list[list[int]] = []
    while len(out) < steps:
        if len(order) < batch_size * group:
            order += rng.permutation(len(lengths)).tolist()
        chunk, order = order[: batch_size * group], order[batch_size * group:]
        chunk.sort(key=lambda i: lengths[i])
        batches = [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
        out += [batches[j] for j in rng.permutation(len(batches))]
    return out[:steps]


def collate(rows: list[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


# -- the job -----------------------------------------------------------------------------------------------------
def job_of(model: str, lang: str, texts: list[dict], cfg: ModuleTrainConfig) -> dict:
    return {"model": model, "lang": lang, "text_sha256": [t["sha256"] for t in texts],
            "config": dataclasses.asdict(cfg)}


def _job_hash(job: dict) -> str:
    return hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()[:16]


def _differences(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    flat = []
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            flat += [f"{k}.{s}" for s in sorted(set(a[k]) | set(b[k])) if a[k].get(s) != b[k].get(s)]
        else:
            flat.append(k)
    return ", ".join(flat)


def _lr(step: int, start: int, total: int, warmup_ratio: float) -> float:
    """Linear warmup then linear decay over steps ``start .. start + total`` (0 before ``start``)."""
    if step < start or total <= 0:
        return 0.0
    s, warm = step - start, max(1, int(warmup_ratio * total))
    return (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))


@torch.no_grad()
def dev_loss(objective: LMObjective, model, dev: list[list[int]], pad: int, device, seed: int,
             batch_size: int) -> float | None:
    if not dev:
        return None
    was = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(dev), batch_size):
        rows = dev[start: start + batch_size]
        ids, mask = collate(rows, pad, device)
        gen = torch.Generator().manual_seed(seed + start)  # the same masked positions every time
        total += float(objective(model, ids, mask, gen)) * len(rows)
        count += len(rows)
    model.train(was)
    return round(total / count, 4)


def train_language_module(model_cfg, lang: str, text_files: list[Path], out: str | Path, cfg: ModuleTrainConfig, *,
                          fresh: bool = False, log: Callable[[str], None] = print,
                          on_step: Callable[[int], None] | None = None) -> Path:
    """Train ``lang``'s module on ``text_files`` into ``out/lang`` (resuming / skipping as the module doc says);
    returns the module folder. ``on_step(step)`` is called after each optimizer step (progress, tests)."""
    from ..models.backbone import load_lm
    from ..models.transfer import TransferModel

    folder = Path(out).expanduser() / lang
    texts = [{"path": str(Path(p).resolve()), "sha256": file_sha256(Path(p))} for p in text_files]
    job = job_of(model_cfg.name_or_path, lang, texts, cfg)
    key = _job_hash(job)
    if fresh and folder.exists():
        shutil.rmtree(folder)
    if (folder / MANIFEST).is_file():
        done = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if done.get("job_hash") == key:
            log(f"{folder}: already trained (same model, text and settings); skipped (--fresh retrains)")
            return folder
        raise XLTuneError(f"{folder} holds a module trained differently ({_differences(done.get('job', {}), job)}); "
                          f"pass --fresh to replace it, or choose another --out")
    if (folder / JOB).is_file():
        started = json.loads((folder / JOB).read_text(encoding="utf-8"))
        if _job_hash(started) != key:
            raise XLTuneError(f"{folder} holds an unfinished training with other settings "
                              f"({_differences(started, job)}); pass --fresh to start over, or choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / JOB).write_text(json.dumps(job, indent=1), encoding="utf-8")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone, lm, fresh_head = load_lm(model_cfg, device)
    for p in lm.parameters():
        p.requires_grad_(False)
    tok = backbone.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    per_file = [read_lines(Path(p)) for p in text_files]
    lines = [line for f in per_file for line in f]
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(lines)).tolist()
    n_dev = min(cfg.dev_lines, len(lines) // 10)
    dev_ids = encode_lines(tok, [lines[i] for i in order[:n_dev]], cfg.max_length)
    train_ids = encode_lines(tok, [lines[i] for i in order[n_dev:]], cfg.max_length)
    if not train_ids:
        raise XLTuneError(f"--text: no usable lines in {', '.join(map(str, text_files))}")
    head_params = _unique([p for n, p in lm.named_parameters(remove_duplicate=False) if n in set(fresh_head)])
    head_steps = 0
    if head_params:
        head_steps = cfg.head_steps if cfg.head_steps is not None else cfg.steps // 5
        log(f"note: {backbone.name} has no {'MLM' if not backbone.is_decoder else 'LM'} head; a fresh one, tied to "
            f"the input embeddings, is fitted alone for {head_steps} steps, then trains with the module "
            f"(kept in {HEAD}; tasks never use it)")
    total = head_steps + cfg.steps
    batches = schedule([len(x) for x in train_ids], cfg.batch_size, total, cfg.seed)
    objective = LMObjective(backbone, lm, cfg)
    state = torch.load(folder / RESUME, map_location="cpu", weights_only=False) if (folder / RESUME).is_file() else None
    step = state["step"] if state else 0
    curve: list = state["curve"] if state else []
    tokens = state["tokens"] if state else 0
    seconds = state["seconds"] if state else 0.0
    cpu_seconds = state.get("cpu_seconds", 0.0) if state else 0.0  # on a shared machine wall time is the neighbours'
    if state:
        log(f"{folder}: resuming at step {step} of {total}")
    for p in head_params:
        p.requires_grad_(True)
    if state and state.get("head"):
        with torch.no_grad():
            for p, saved in zip(head_params, state["head"]):
                p.copy_(saved.to(p.device))

    bar = tqdm(total=total, initial=step, desc=f"{lang} {cfg.kind}", unit="step", leave=False,
               disable=not sys.stderr.isatty())
    t0, c0 = time.perf_counter(), time.process_time()
    window: list[float] = state.get("window", []) if state else []  # losses since the last curve point

    def run(model, params: list[nn.Parameter], phase: int, phase_start: int, phase_steps: int, optimizer):
        nonlocal step, tokens
        while step < phase_start + phase_steps:
            for group in optimizer.param_groups:
                group["lr"] = group["peak"] * _lr(step, phase_start, phase_steps, cfg.warmup_ratio)
            ids, mask = collate([train_ids[i] for i in batches[step]], pad, device)
            torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout: the same whether resumed or not
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_033 + step)
            loss = objective(model, ids, mask, gen)  # phase 1: nothing in the backbone requires grad, no graph there
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += int(mask.sum())
            window.append(loss.item())
            if step % max(1, total // 50) == 0 or step == total:
                curve.append([step, round(sum(window) / len(window), 4)])
                window.clear()
            bar.update(1)
            bar.set_postfix(loss=f"{window[-1] if window else loss.item():.3f}")
            if step % max(1, total // 10) == 0:
                log(f"  step {step}/{total}  loss {loss.item():.4f}")
            if step % cfg.save_every == 0 or step == phase_start + phase_steps:
                save(optimizer, phase)
            if on_step is not None:
                on_step(step)

    def save(optimizer, phase: int) -> None:
        blob = {"step": step, "phase": phase, "curve": curve, "window": list(window), "tokens": tokens,
                "seconds": seconds + time.perf_counter() - t0, "cpu_seconds": cpu_seconds + time.process_time() - c0,
                "optimizer": optimizer.state_dict(), "head": [p.detach().cpu() for p in head_params],
                "module": {k: p.detach().cpu() for k, p in module_params.items()}, "dev_before": dev_before}
        tmp = folder / f"{RESUME}.tmp"
        torch.save(blob, tmp)
        os.replace(tmp, folder / RESUME)

    module_params: dict[str, nn.Parameter] = {}
    dev_before = state.get("dev_before") if state else None
    bare = TransferModel(backbone, 2, pooling="mean").to(device).train()  # the backbone without the module
    for p in bare.head.parameters():
        p.requires_grad_(False)
    if step < head_steps:  # phase 1: a fresh head alone, on the model without the module
        opt = _adamw(head_params, cfg.peak_lr)
        if state:
            opt.load_state_dict(state["optimizer"])
        run(bare, head_params, 1, 0, head_steps, opt)
        state = None
    if dev_before is None:
        dev_before = dev_loss(objective, bare, dev_ids, pad, device, cfg.seed, cfg.batch_size)

    torch.manual_seed(cfg.seed)  # the module's initialisation
    module_params, arch, prompt = add_module(backbone, cfg)
    objective.use_invertible()
    model = TransferModel(backbone, 2, pooling="mean", deep_prompt=prompt,
                          shift_positions=cfg.prefix_positions == "shift").to(device).train()
    for p in model.head.parameters():
        p.requires_grad_(False)
    params = list(module_params.values()) + head_params
    opt = _adamw(params, cfg.peak_lr)
    if state and state["phase"] == 2:
        with torch.no_grad():
            for k, p in module_params.items():
                p.copy_(state["module"][k].to(p.device))
        opt.load_state_dict(state["optimizer"])
    run(model, params, 2, head_steps, cfg.steps, opt)
    bar.close()
    dev_after = dev_loss(objective, model, dev_ids, pad, device, cfg.seed, cfg.batch_size)
    seconds += time.perf_counter() - t0
    cpu_seconds += time.process_time() - c0

    manifest = {
        "kind": cfg.kind, "lang": lang, "architecture": arch,
        "model": {"name_or_path": model_cfg.name_or_path, **model_fingerprint(backbone)},
        "objective": "causal LM" if backbone.is_decoder else "masked LM",
        "lm_head": (f"fresh (the checkpoint has none): tied to the input embeddings, fitted alone for {head_steps} "
                    f"steps, then with the module; in {HEAD}") if head_params else "the checkpoint's, frozen",
        "text": [{**t, "lines": len(f)} for t, f in zip(texts, per_file)],
        "text_sha256": hashlib.sha256("".join(t["sha256"] for t in texts).encode()).hexdigest(),
        "train": {"steps": cfg.steps, "head_steps": head_steps, "lines": len(train_ids), "dev_lines": len(dev_ids),
                  "tokens_seen": tokens, "seconds": round(seconds, 1),
                  "cpu_seconds": round(cpu_seconds, 1), "loss_curve": curve,
                  "dev_loss": {"without_module": dev_before, "with_module": dev_after}},
        "config": dataclasses.asdict(cfg), "job": job, "job_hash": key, "xltune": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    extra = {HEAD: {n: p for n, p in lm.named_parameters() if n in set(fresh_head)}} if head_params else None
    write_module(folder, module_params, manifest, extra)
    for name in (RESUME, JOB):
        (folder / name).unlink(missing_ok=True)
    log(f"{folder}: {cfg.kind} module for {lang}, {cfg.steps} steps, {tokens:,} tokens in {seconds:.0f} s "
        f"({cpu_seconds:.0f} CPU s); dev loss "
        f"{dev_before} without the module -> {dev_after} with it")
    return folder


def _adamw(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    for group in opt.param_groups:
        group["peak"] = lr
    return opt


def _unique(params: list[nn.Parameter]) -> list[nn.Parameter]:
    seen, out = set(), []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out
