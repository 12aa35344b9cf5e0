"""Training speed and memory: deep_prompt and finetune, xltune vs the usual pipeline, with and without gradient
checkpointing. Each configuration runs in its own process (clean peak memory). Prints a table and appends it to
bench/RESULTS.md.

  xltune : XGLMModel (no LM head) + deep prompt (16) or full fine-tuning + linear head on the last real token;
           batches padded to their longest input; SDPA attention; AdamW (fused on CUDA); bf16 autocast on GPU with
           fp32 trainable weights; the frozen backbone of deep_prompt in bf16 on GPU (load_backbone(frozen=True)).
  usual  : XGLMForCausalLM with fp32 master weights + bf16 autocast (Trainer-like), peft PrefixTuningConfig (16
           virtual tokens) or full fine-tuning; every input padded to 128; loss over 3 label words read from the
           full LM logits at the last real token.

Batches: --batch-size random XNLI test pairs (all 15 languages) with their real lengths; tokens/s counts real
(non-pad) tokens for both pipelines, so padding to 128 costs the usual pipeline what it costs in practice.

  python bench/bench_train.py --device cuda --model-config xglm-564M
  python bench/bench_train.py --device cpu --model-config tiny --batch-size 8 --steps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CONFIGS = [  # (pipeline, method, gradient checkpointing)
    ("xltune", "deep_prompt", False), ("xltune", "deep_prompt", True),
    ("xltune", "finetune", False), ("xltune", "finetune", True),
    ("usual", "deep_prompt", False), ("usual", "finetune", False),
]


def batches(tok, data: str, batch_size: int, n: int, seed: int = 0) -> list[list]:
    pairs = [e for exs in common.xnli_pairs(data, "test", 200).values() for e in exs]
    rng = np.random.default_rng(seed)
    return [[pairs[i] for i in rng.choice(len(pairs), batch_size, replace=False)] for _ in range(n)]


def xltune_setup(config, method: str, ckpt: bool, device, tok):
    from transformers import AutoModel

    from xltune.config import ModelConfig
    from xltune.methods import build_model, method_settings
    from xltune.models.attention import enable_sdpa
    from xltune.models.backbone import backbone_from_model

    frozen_bf16 = method != "finetune" and device.type == "cuda"  # what dtype=auto gives a frozen backbone on GPU
    torch.manual_seed(0)
    base = AutoModel.from_config(config, attn_implementation="eager",
                                 dtype=torch.bfloat16 if frozen_bf16 else torch.float32)
    enable_sdpa(base)
    backbone = backbone_from_model(base.to(device), tok, kind="decoder")
    knobs = {"prefix_length": common.PREFIX} if method == "deep_prompt" else {}
    model = build_model(backbone, method_settings(method, **knobs), "sequence", 3,
                        ModelConfig(name_or_path="bench", gradient_checkpointing=ckpt)).to(device).train()
    from xltune.data.encode import collate, encode_sentences
    from xltune.train import task_loss

    def step_inputs(b):
        enc = encode_sentences(b, tok, 128)
        batch = collate(enc.features, tok.pad_token_id, "right", False)
        return {k: v.to(device) for k, v in batch.items()}, sum(len(f.input_ids) for f in enc.features), \
            [len(f.input_ids) for f in enc.features]

    def loss_fn(batch):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return task_loss(out.logits, batch["labels"]) / len(batch["labels"])

    return model, step_inputs, loss_fn


def usual_setup(config, method: str, ckpt: bool, device, tok):
    from transformers import XGLMForCausalLM

    torch.manual_seed(0)
    model = XGLMForCausalLM._from_config(config, attn_implementation="eager", dtype=torch.float32).to(device)
    if method == "deep_prompt":
        from peft import PrefixTuningConfig, get_peft_model

        model = get_peft_model(model, PrefixTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=common.PREFIX, num_layers=config.num_layers,
            token_dim=config.d_model, num_attention_heads=config.attention_heads))
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    label_ids = torch.tensor(tok.convert_tokens_to_ids(["▁yes", "▁maybe", "▁no"]), device=device)

    def step_inputs(b):
        enc = tok([e.texts[0] for e in b], [e.texts[1] for e in b], padding="max_length", truncation=True,
                  max_length=128, return_tensors="pt")
        lengths = enc.attention_mask.sum(1).tolist()
        batch = {"input_ids": enc.input_ids.to(device), "attention_mask": enc.attention_mask.to(device),
                 "labels": torch.tensor([e.label for e in b], device=device)}
        return batch, int(sum(lengths)), lengths

    def loss_fn(batch):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        last = batch["attention_mask"].sum(1) - 1
        scores = logits[torch.arange(len(last), device=device), last][:, label_ids]
        return torch.nn.functional.cross_entropy(scores.float(), batch["labels"])

    return model, step_inputs, loss_fn


def one_config(args) -> dict:
    """Run one (pipeline, method, ckpt) and return its figures (called in a child process)."""
    common.set_threads()
    device = torch.device(args.device)
    config = common.xglm_config(args.model_config)
    tok = common.load_tokenizer(args.tokenizer)
    setup = xltune_setup if args.pipeline == "xltune" else usual_setup
    model, step_inputs, loss_fn = setup(config, args.method, args.ckpt, device, tok)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-5, fused=device.type == "cuda")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    data = [step_inputs(b) for b in batches(tok, args.data, args.batch_size, args.warmup + args.steps)]
    common.reset_memory(device)

    def step(batch):
        with amp:
            loss = loss_fn(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for batch, _, _ in data[: args.warmup]:
        step(batch)
    common.sync(device)
    t = time.perf_counter()
    tokens, lengths = 0, []
    for batch, n, ls in data[args.warmup :]:
        step(batch)
        tokens += n
        lengths += ls
    common.sync(device)
    seconds = time.perf_counter() - t
    factor = 3.0 if args.method == "finetune" else 2.0  # weight grads only when the weights train
    flops = factor * common.forward_flops(config, lengths, common.PREFIX if args.method == "deep_prompt" else 0)
    return {"seconds": seconds, "tokens": tokens, "steps": args.steps, "flops": flops,
            "memory_gib": common.peak_memory_gib(device),
            "trainable": sum(p.numel() for p in trainable)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--model-config", default="xglm-564M", choices=["xglm-564M", "tiny"])
    ap.add_argument("--tokenizer", default=common.DEFAULT_TOKENIZER)
    ap.add_argument("--data", default=common.DEFAULT_DATA)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default=None, help="comma-separated config names (e.g. xltune:deep_prompt,usual:finetune)")
    ap.add_argument("--no-record", action="store_true")
    # child-process mode
    ap.add_argument("--pipeline", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pipeline:
        print(json.dumps(one_config(args)))
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; use --device cpu")
    config = common.xglm_config(args.model_config)
    peak, peak_src = common.declared_peak(device, torch.bfloat16 if device.type == "cuda" else torch.float32)
    shared = ["--device", args.device, "--model-config", args.model_config, "--tokenizer", args.tokenizer,
              "--data", args.data, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
              "--warmup", str(args.warmup)]
    wanted = set(args.only.split(",")) if args.only else None
    results, rows = {}, []
    for pipeline, method, ckpt in CONFIGS:
        name = f"{pipeline}:{method}" + (":ckpt" if ckpt else "")
        if wanted and name not in wanted and f"{pipeline}:{method}" not in wanted:
            continue
        r = common.run_isolated(Path(__file__), shared + ["--pipeline", pipeline, "--method", method]
                                + (["--ckpt"] if ckpt else []))
        results[name] = r
        if "error" in r:
            rows.append([name, "error", "", "", "", "", r["error"]])
        else:
            tps = r["tokens"] / r["seconds"]
            mfu = 100 * r["flops"] / r["seconds"] / 1e12 / peak
            rows.append([name, common.fmt(tps, 0), common.fmt(r["seconds"] / r["steps"], 3), common.fmt(mfu, 1),
                         common.fmt(r["memory_gib"], 2), f"{r['trainable']:,}", ""])
        print(" | ".join(rows[-1]), flush=True)

    def ratio(a: str, b: str) -> None:
        ra, rb = results.get(a), results.get(b)
        if ra and rb and "error" not in ra and "error" not in rb:
            tps = (ra["tokens"] / ra["seconds"]) / (rb["tokens"] / rb["seconds"])
            mfu = (ra["flops"] / ra["seconds"]) / (rb["flops"] / rb["seconds"])
            rows.append([f"ratio {a} / {b}", f"{tps:.2f}x", "", f"{mfu:.2f}x",
                         f"{ra['memory_gib'] / rb['memory_gib']:.2f}x", "", ""])

    ratio("xltune:deep_prompt", "usual:deep_prompt")
    ratio("xltune:finetune", "usual:finetune")
    ratio("xltune:deep_prompt", "xltune:finetune")
    mem = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak RSS of the process"
    table = common.Table(
        f"train — {args.model_config}, {args.device}, batch {args.batch_size} real XNLI pairs, {args.steps} steps",
        ["config", "real tokens/s", "s/step", "MFU %", f"peak GiB ({mem})", "trainable params", "error"],
        rows,
        [f"MFU = useful FLOPs / s / peak: (3 x fwd when weights train, 2 x fwd when frozen) with fwd = 2 x "
         f"{common.body_params(config):,} body params x real tokens + attention; recomputation (checkpointing), "
         f"padding and the usual pipeline's LM head are not counted",
         f"peak {common.fmt(peak, 3)} TFLOP/s ({peak_src})"])
    common.publish(table, device, "bench_train.py", argv, record=not args.no_record)


if __name__ == "__main__":
    main()
