"""Shared pieces of the benchmarks (bench_eval.py, bench_train.py): model configs, tokenizer, XNLI data, FLOP
counting, peak throughput, memory, and the RESULTS.md writer. Benchmarks are scripts, not tests (ARCHITECTURE.md).

FLOP counting (see README.md): useful model FLOPs only, on real (non-pad) tokens:
  matmul  = 2 x N_body x tokens per forward, N_body = parameters of the decoder layers (embedding lookups,
            sinusoidal positions and the never-needed LM head excluded);
  attention = 4 x layers x d_model x L x (P + L) per sequence of L real tokens (QK^T and AV; P = prefix length;
            the causal half is counted in full, as in the PaLM MFU convention);
  training multiplies the forward by 3 when weights train (fwd + input grads + weight grads) and by 2 when the
  backbone is frozen (fwd + input grads only).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
DEFAULT_TOKENIZER = "/work/cache/e5-small"  # XLM-R's 250k sentencepiece vocabulary (see README.md)
DEFAULT_DATA = "/work/shared/data/xnli"
XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PREFIX = 16  # virtual tokens of the deep prompt / peft prefix tuning

# declared dense bf16 peaks (TFLOP/s, no sparsity) from the vendors' data sheets
GPU_PEAKS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}


def xglm_config(name: str):
    """XGLM-564M's architecture (random weights: weights do not change speed) or the tiny CPU variant."""
    from transformers import XGLMConfig

    shapes = {"xglm-564M": (1024, 24, 16, 4096), "tiny": (256, 4, 4, 1024)}
    if name not in shapes:
        raise SystemExit(f"--model-config: unknown {name!r}; expected one of {sorted(shapes)}")
    d, layers, heads, ffn = shapes[name]
    # the real 256,008 vocabulary in both: the usual pipeline's LM head cost depends on it
    return XGLMConfig(vocab_size=256008, d_model=d, num_layers=layers, attention_heads=heads, ffn_dim=ffn,
                      max_position_embeddings=2048, dropout=0.1, attention_dropout=0.1, activation_dropout=0.0,
                      pad_token_id=1, architectures=["XGLMForCausalLM"])


def body_params(config) -> int:
    """Parameters of the decoder layers (+ final layer norm): what every token multiplies through."""
    d, f = config.d_model, config.ffn_dim
    per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    return config.num_layers * per_layer + 2 * d


def forward_flops(config, lengths: list[int], prefix: int = 0, attention: bool = True) -> float:
    n = body_params(config)
    tokens = sum(lengths)
    flops = 2.0 * n * tokens
    if attention:
        flops += 4.0 * config.num_layers * config.d_model * sum(L * (prefix + L) for L in lengths)
    return flops


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise SystemExit(
            f"--tokenizer {name}: cannot load ({str(e).splitlines()[0]}). Build the XLM-R-vocabulary tokenizer with "
            "`python3 /work/shared/tools/e5small_to_hf.py /work/cache/e5-small --bin .../e5-small-pruned-q4.bin "
            "--tokenizer .../tokenizer.json.gz`, or pass a hub id (facebook/xglm-564M) where the hub is reachable")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def xnli_pairs(data_dir: str, split: str = "test", limit: int | None = None,
               langs: tuple[str, ...] = XNLI_LANGS) -> dict[str, list[tuple[str, str, int]]]:
    """(premise, hypothesis, label) per language from ``{split}-{lang}.tsv`` (XNLI's 3-column TSV)."""
    from xltune.data.readers import load_examples
    from xltune.data.tasks import resolve_task
    from xltune.config import TaskConfig

    spec = resolve_task(TaskConfig(name="xnli", data_dir=data_dir))
    out = {}
    for lang in langs:
        path = Path(data_dir) / f"{split}-{lang}.tsv"
        if not path.exists():
            raise SystemExit(f"--data {data_dir}: missing {path.name} (XNLI {split} TSVs expected)")
        exs = load_examples(spec, data_dir, split, lang)
        out[lang] = exs[:limit] if limit else exs
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


_CPU_PEAK: float | None = None


def declared_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, str]:
    """(TFLOP/s, where it comes from): the data-sheet bf16 dense peak on GPU; on CPU no data sheet applies, so the
    peak is *measured*: the best of a few 2048^3 fp32 matmuls (MFU on CPU = share of what matmul alone reaches)."""
    global _CPU_PEAK
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in GPU_PEAKS.items():
            if key in name:
                return peak, f"{key} bf16 dense data sheet"
        return float("nan"), f"unknown GPU {name!r}: no declared peak"
    if _CPU_PEAK is None:
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        _CPU_PEAK = 2 * 2048**3 / best / 1e12
    return _CPU_PEAK, "measured fp32 matmul peak of this CPU"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float:
    """GPU: torch.cuda.max_memory_allocated. CPU: the process's peak RSS (run each config in its own process)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_isolated(script: Path, args: list[str]) -> dict:
    """Run one configuration in a fresh process (clean peak memory); it prints one JSON line last."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def versions() -> str:
    import peft
    import transformers

    return f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str]

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes]) + "\n"


def append_results(table: Table, device: torch.device, command: str) -> None:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    head = (f"\n## {stamp} — {device_name(device)}\n\n{versions()}; `{command}`\n\n")
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(head + table.markdown())


def publish(table: Table, device: torch.device, script: str, argv: list[str] | None, record: bool) -> None:
    """Print the table and, unless ``record`` is off, append it to RESULTS.md with the command that made it."""
    import sys

    print(table.markdown())
    if record:
        append_results(table, device, f"python bench/{script} " + " ".join(sys.argv[1:] if argv is None else argv))


def fmt(x: float, digits: int = 2) -> str:
    if x != x:  # nan
        return "n/a"
    return f"{x:,.{digits}f}"


def set_threads() -> None:
    n = os.environ.get("BENCH_THREADS")
    if n:
        torch.set_num_threads(int(n))
