"""Evaluation speed on the XNLI test set (15 languages x 5,010 pairs, real token lengths): xltune vs the usual
pipeline, measured in the same run. Prints a table and appends it to bench/RESULTS.md.

  xltune : XGLMModel (no LM head) + deep prompt (16) + linear head, SDPA attention, length-sorted token-budget
           batches (dynamic padding), bf16 on GPU.
  usual  : XGLMForCausalLM + peft PrefixTuningConfig (16 virtual tokens), every input padded to 128, batches of 32
           in file order, label words scored from the LM logits at the last real token.

  python bench/bench_eval.py --device cuda --model-config xglm-564M           # the H100 figure
  python bench/bench_eval.py --device cpu --model-config tiny --limit 64 --usual-batches 4 --ablations
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def encode_all(tok, pairs: dict, max_length: int):
    from xltune.data.encode import encode_sentences

    t = time.perf_counter()
    enc = {lang: encode_sentences(exs, tok, max_length) for lang, exs in pairs.items()}
    return enc, time.perf_counter() - t


def xltune_model(config, tok, device: torch.device, dtype: torch.dtype, sdpa: bool, compile_: bool):
    from transformers import AutoModel

    from xltune.config import ModelConfig
    from xltune.methods import build_model, method_settings
    from xltune.models.attention import enable_sdpa
    from xltune.models.backbone import backbone_from_model

    torch.manual_seed(0)
    base = AutoModel.from_config(config, attn_implementation="eager", dtype=dtype)
    if sdpa:
        enable_sdpa(base)
    backbone = backbone_from_model(base.to(device), tok, kind="decoder")
    model = build_model(backbone, method_settings("deep_prompt", prefix_length=common.PREFIX), "sequence", 3,
                        ModelConfig(name_or_path="bench")).to(device).eval()
    if compile_:
        model.backbone = torch.compile(model.backbone, dynamic=True)
    return model


def run_xltune(model, enc: dict, device, batch_size: int, token_budget: bool, amp) -> tuple[float, int]:
    from xltune.evaluate import predict

    kw = dict(batch_size=batch_size, pad_id=1, padding_side="right", token_task=False, device=device,
              autocast_dtype=amp, max_tokens=None if token_budget else 0)
    first = next(iter(enc.values()))
    from xltune.data.encode import Encoded
    predict(model, Encoded(first.features[:batch_size], batch_size), **kw)  # warm-up (kernels, allocator)
    common.sync(device)
    t = time.perf_counter()
    n = 0
    for e in enc.values():
        preds = predict(model, e, **kw)
        n += len(preds)
    common.sync(device)
    return time.perf_counter() - t, n


def usual_model(config, device, dtype):
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import XGLMForCausalLM

    torch.manual_seed(0)
    lm = XGLMForCausalLM._from_config(config, attn_implementation="eager", dtype=dtype).to(device)
    cfg = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=common.PREFIX, num_layers=config.num_layers,
                             token_dim=config.d_model, num_attention_heads=config.attention_heads)
    return get_peft_model(lm, cfg).to(device).eval()


@torch.no_grad()
def run_usual(model, tok, pairs: dict, device, batch_size: int, max_batches: int | None, amp, label_ids):
    """P-tuning v2 style: pad_to_max_length 128, fixed batches in file order, full LM logits."""
    batches = []
    for exs in pairs.values():
        for s in range(0, len(exs), batch_size):
            batches.append(exs[s : s + batch_size])
    if max_batches:
        # spread the measured batches over all languages (scripts differ in length only through truncation here)
        step = max(1, len(batches) // max_batches)
        batches = batches[::step][:max_batches]
    ctx = torch.autocast(device.type, dtype=amp) if amp else torch.autocast(device.type, enabled=False)

    def one(b):
        enc = tok([e.texts[0] for e in b], [e.texts[1] for e in b], padding="max_length", truncation=True,
                  max_length=128, return_tensors="pt").to(device)
        with ctx:
            logits = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits
        last = enc.attention_mask.sum(1) - 1
        return logits[torch.arange(len(b), device=device), last][:, label_ids].argmax(-1).cpu()

    one(batches[0])  # warm-up
    common.sync(device)
    t = time.perf_counter()
    n = 0
    for b in batches:
        one(b)
        n += len(b)
    common.sync(device)
    return time.perf_counter() - t, n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    ap.add_argument("--model-config", default="xglm-564M", choices=["xglm-564M", "tiny"])
    ap.add_argument("--tokenizer", default=common.DEFAULT_TOKENIZER, help="tokenizer dir or hub id (README.md)")
    ap.add_argument("--data", default=common.DEFAULT_DATA, help="folder with XNLI test-{lang}.tsv")
    ap.add_argument("--limit", type=int, default=None, help="pairs per language (quick looks)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--usual-batches", type=int, default=None, help="measure the usual pipeline on this many batches")
    ap.add_argument("--ablations", action="store_true", help="also xltune with eager attention / fixed-count batches")
    ap.add_argument("--compile", action="store_true", help="torch.compile the backbone (off by default)")
    ap.add_argument("--no-usual", action="store_true")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    common.set_threads()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; use --device cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    amp = torch.bfloat16 if device.type == "cuda" else None
    config = common.xglm_config(args.model_config)
    tok = common.load_tokenizer(args.tokenizer)
    pairs = common.xnli_pairs(args.data, "test", args.limit)
    enc, enc_s = encode_all(tok, pairs, 128)
    lengths = [len(f.input_ids) for e in enc.values() for f in e.features]
    n_pairs = len(lengths)
    stats = (f"{n_pairs:,} pairs, {sum(lengths):,} tokens, mean {np.mean(lengths):.1f} / median "
             f"{np.median(lengths):.0f} / max {max(lengths)} tokens per pair ({tok.name_or_path}), "
             f"{sum(e.truncated for e in enc.values())} truncated at 128; encoding took {enc_s:.1f} s")
    print(stats)
    peak, peak_src = common.declared_peak(device, dtype)
    flops_per_pair = common.forward_flops(config, lengths, common.PREFIX) / n_pairs
    rows, figures = [], {}

    def row(name: str, seconds: float, n: int, note: str = "") -> None:
        tflops = flops_per_pair * n / seconds / 1e12
        figures[name] = (n / seconds, tflops)
        full = seconds * n_pairs / n
        rows.append([name, f"{n:,}", common.fmt(seconds), common.fmt(full) + ("" if n == n_pairs else " (extrap.)"),
                     common.fmt(n / seconds, 1), common.fmt(tflops, 3), common.fmt(100 * tflops / peak, 1), note])
        print(" | ".join(rows[-1]), flush=True)

    variants = [("xltune", True, True)]
    if args.ablations:
        variants += [("xltune, fixed 32/batch", True, False), ("xltune, eager attn, fixed 32/batch", False, False)]
    for name, sdpa, budget in variants:
        model = xltune_model(config, tok, device, dtype, sdpa, args.compile)
        s, n = run_xltune(model, enc, device, args.batch_size, budget, amp)
        row(name, s, n, ("sdpa" if sdpa else "eager") + (", token budget" if budget else ", fixed count"))
        del model
    if not args.no_usual:
        model = usual_model(config, device, dtype)
        label_ids = tok.convert_tokens_to_ids(["▁yes", "▁maybe", "▁no"])  # any 3 ids: only the cost matters
        s, n = run_usual(model, tok, pairs, device, args.batch_size, args.usual_batches, amp, label_ids)
        row("usual (peft prefix, pad 128)", s, n, "eager, LM head, file order")
        del model
        x, u = figures["xltune"], figures["usual (peft prefix, pad 128)"]
        rows.append(["ratio xltune/usual", "", "", "", f"{x[0] / u[0]:.2f}x", f"{x[1] / u[1]:.2f}x", "", ""])
    table = common.Table(
        f"eval — XNLI test, {args.model_config}, {args.device}, {'bf16' if amp else 'fp32'}",
        ["pipeline", "pairs measured", "seconds", "s for all pairs", "pairs/s", "TFLOP/s", "% peak", "notes"],
        rows,
        [stats,
         f"TFLOP/s = useful FLOPs (2 x {common.body_params(config):,} body params x real tokens + attention "
         f"4·layers·d·L·(16+L)) / seconds; the same useful FLOPs for both pipelines (the usual one also pays the LM "
         f"head and padding to 128, not counted)",
         f"peak {common.fmt(peak, 3)} TFLOP/s ({peak_src})"])
    common.publish(table, device, "bench_eval.py", argv, record=not args.no_record)


if __name__ == "__main__":
    main()
