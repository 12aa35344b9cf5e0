"""Tokenizer training and causal-LM pretraining of a tiny XGLM on the synthetic corpus; the cached
world + model builder; and a frozen-feature NLI probe that checks the world actually transfers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import XLTuneError
from .world import World, WorldConfig, build_world

SPECIALS = ("<s>", "</s>", "<pad>", "<unk>")


@dataclass
class PretrainConfig:
    vocab_size: int = 800  # small on purpose: frequent (high-resource) words get merged, rare ones stay split
    d_model: int = 64  # d64 learns the premise/hypothesis comparison within the CPU budget; d128 costs 3x per step
    layers: int = 2
    heads: int = 4
    ffn_dim: int = 128
    seq_len: int = 48  # one document per row (QA passages are ~15 tokens); longer stories are cut
    batch_size: int = 128
    steps: int = 1200  # with group_by_length: 60-75 s on 2 cores; 600 ungrouped steps transferred for one seed only
    lr: float = 1e-2  # 6e-3 left the comparison half-learned for some pretraining seeds (docs/synthetic.md)
    warmup: int = 30
    threads: int = 2
    pack: bool = False  # False: one document per row from position 0, as the pipeline feeds one example
    position_jitter: int = 0  # >0: half the rows start at a random position 1..jitter (tried 16: worse, see docs)
    # Unpacked rows: draw group_by_length batches of random rows at once, sort them by length and cut them into
    # batches, so a batch of 14-token QA passages is not padded to a 48-token story (2.4x fewer ms per step; 1: off).
    group_by_length: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name not in ("seed", "warmup", "pack", "position_jitter") and v <= 0:
                raise XLTuneError(f"PretrainConfig.{f.name} must be > 0, got {v}")
        if self.d_model % self.heads:
            raise XLTuneError(f"PretrainConfig: d_model ({self.d_model}) must be a multiple of heads ({self.heads})")


# -- tokenizer -----------------------------------------------------------------------------------------------------
def train_tokenizer(corpus_files: list[Path], vocab_size: int, out_dir: Path):
    """BPE over whitespace-split words (Metaspace, as SentencePiece tokenizers of XGLM/XLM-R do), trained on the
    corpus as is, so each language's share of merges follows its share of the corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
    tok.train([str(p) for p in corpus_files], trainer)
    bos = tok.token_to_id("<s>")
    # Pairs are plain concatenation: the corpus's QA passages are premise + hypothesis without a separator.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B:1", special_tokens=[("<s>", bos)])
    # Right padding: XGLM numbers positions from the first token, so left padding would shift them.
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", padding_side="right")
    fast.save_pretrained(out_dir)
    return fast


def fertility(tokenizer, lines: list[str]) -> float:
    """Sub-word tokens per whitespace word."""
    words = sum(len(l.split()) for l in lines)
    toks = sum(len(tokenizer(l, add_special_tokens=False)["input_ids"]) for l in lines)
    return toks / max(words, 1)


# -- pretraining ---------------------------------------------------------------------------------------------------
def _blocks(tokenizer, world: World, seq_len: int, rng: random.Random, pack: bool = True) -> torch.Tensor:
    """Token rows for the LM. ``pack``: documents concatenated and cut into ``seq_len`` blocks (the usual LM
    recipe). Otherwise one document per row starting at position 0, right-padded with ``<pad>`` (ignored by the
    loss): a task example in the pipeline also starts at position 0, so the positional "k tokens back" pattern
    that compares hypothesis with premise is learned at the positions where the pipeline will use it."""
    docs = [l for p in world.corpus.values() for l in p.read_text(encoding="utf-8").splitlines() if l]
    rng.shuffle(docs)
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    if not pack:
        rows = [[bos, *d, eos][:seq_len] for d in ids]
        return torch.tensor([r + [pad] * (seq_len - len(r)) for r in rows])
    stream = [t for d in ids for t in (bos, *d, eos)]
    n = len(stream) // seq_len
    return torch.tensor(stream[: n * seq_len]).view(n, seq_len)


def _batch_indices(mask: torch.Tensor, batch_size: int, group: int, g: torch.Generator):
    """Endless random batches of row indices; with ``group`` > 1, each draw of ``group`` batches is sorted by row
    length before it is cut (as transformers' ``group_by_length`` does), and the batches come in random order."""
    lengths = mask.sum(1)
    while True:
        idx = torch.randint(len(mask), (batch_size * group,), generator=g)
        if group > 1:
            idx = idx[torch.argsort(lengths[idx], stable=True)]
        chunks = idx.view(group, batch_size)
        for j in torch.randperm(group, generator=g).tolist():
            yield chunks[j]


def pretrain(world: World, out_dir: str | Path, steps: int | None = None, cfg: PretrainConfig | None = None,
             log=None) -> Path:
    """Train the tokenizer and a tiny XGLMForCausalLM on the world's corpus; save both to ``out_dir``."""
    from transformers import XGLMConfig, XGLMForCausalLM

    cfg = cfg or PretrainConfig()
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        tok = train_tokenizer(list(world.corpus.values()), cfg.vocab_size, out)
        t1 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        data = _blocks(tok, world, cfg.seq_len, random.Random(cfg.seed), cfg.pack)
        mcfg = XGLMConfig(vocab_size=len(tok), d_model=cfg.d_model, num_layers=cfg.layers, attention_heads=cfg.heads,
                          ffn_dim=cfg.ffn_dim, max_position_embeddings=cfg.seq_len * 2 + cfg.position_jitter, dropout=0.0,
                          attention_dropout=0.0, activation_dropout=0.0, layerdrop=0.0,
                          pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          decoder_start_token_id=tok.eos_token_id)
        model = XGLMForCausalLM(mcfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1))
                                                  * max(0.05, 1 - s / cfg.steps))
        g = torch.Generator().manual_seed(cfg.seed)
        batches = _batch_indices(data != tok.pad_token_id, cfg.batch_size, 1 if cfg.pack else cfg.group_by_length, g)
        model.train()
        losses = []
        for step in range(cfg.steps):
            batch = data[next(batches)]
            mask = batch != tok.pad_token_id
            width = int(mask.sum(1).max())  # unpacked rows: cut the batch to its longest document
            batch, mask = batch[:, :width], mask[:, :width]
            # A prefix of P deep-prompt vectors moves the input to positions P.. (as a KV cache does): start half
            # the rows later, so the positional comparison the model learns does not hinge on absolute position 0.
            shift = torch.randint(1, cfg.position_jitter + 1, (len(batch), 1), generator=g) if cfg.position_jitter else 0
            shift = shift * (torch.rand(len(batch), 1, generator=g) < 0.5) if cfg.position_jitter else 0
            pos = torch.arange(width).unsqueeze(0) + shift
            loss = model(input_ids=batch, attention_mask=mask.long(), position_ids=pos,
                         labels=batch.masked_fill(~mask, -100)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if log and (step % 50 == 0 or step == cfg.steps - 1):
                log(f"step {step} loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
        model.eval()
        model.save_pretrained(out)
        t2 = time.perf_counter()
        # CPU seconds too: on a shared machine wall time says more about the neighbours than about this build.
        info = {"tokenizer_s": t1 - t0, "pretrain_s": t2 - t1, "cpu_s": time.process_time() - c0, "final_loss": sum(losses[-20:]) / len(losses[-20:]),
                "blocks": len(data), "pretrain_config": dataclasses.asdict(cfg)}
        (out / "pretrain.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    finally:
        torch.set_num_threads(threads)
    return out


# -- cache -----------------------------------------------------------------------------------------------------------
def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "xltune" / "synthetic"


def ensure_world_and_model(cfg: WorldConfig | None = None, fresh: bool = False,
                           pretrain_cfg: PretrainConfig | None = None, log=None) -> tuple[Path, Path, dict]:
    """Build (or reuse from the cache) the world and its pretrained model.

    Returns ``(data_dir, model_dir, facts)``: ``data_dir/nli`` and ``data_dir/ner`` hold ``{split}-{lang}.tsv``;
    ``model_dir`` loads with ``AutoTokenizer``/``AutoModelForCausalLM``; ``facts`` has per-language facts
    (script, order, morphology, resource share, corpus size, tokenizer fertility), ``timings`` (seconds per
    stage; ``cached: true`` when nothing was built) and the languages.
    """
    cfg = cfg or WorldConfig()
    pcfg = pretrain_cfg or PretrainConfig()
    key = hashlib.sha256((cfg.key() + json.dumps(dataclasses.asdict(pcfg), sort_keys=True)).encode()).hexdigest()[:12]
    final = cache_root() / key
    done = final / "facts.json"
    if done.is_file() and not fresh:
        facts = json.loads(done.read_text(encoding="utf-8"))
        facts["timings"] = {"cached": True}
        return final / "data", final / "model", facts
    # Build beside the final place and rename, so an interrupted build never looks complete.
    tmp = final.with_name(f"{key}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    world = build_world(cfg, tmp / "data")
    t1 = time.perf_counter()
    model_dir = pretrain(world, tmp / "model", cfg=pcfg, log=log)
    t2 = time.perf_counter()
    info = json.loads((model_dir / "pretrain.json").read_text(encoding="utf-8"))
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    langs = {}
    for code, f in world.facts.items():
        lines = (tmp / "data" / "nli" / f"test-{code}.tsv").read_text(encoding="utf-8").splitlines()[1:200]
        docs = world.corpus[code].read_text(encoding="utf-8").splitlines()
        tokens = sum(len(ids) for ids in tok(docs, add_special_tokens=False)["input_ids"]) if docs else 0
        langs[code] = dict(f, fertility=round(fertility(tok, [l.split("\t")[0] for l in lines]), 3),
                           corpus_tokens=tokens)
    facts = {"key": key, "languages": langs, "source": cfg.codes[0], "tasks": ["nli", "ner"],
             "timings": {"world_s": round(t1 - t0, 2), "tokenizer_s": round(info["tokenizer_s"], 2),
                         "pretrain_s": round(info["pretrain_s"], 2), "pretrain_cpu_s": round(info["cpu_s"], 2),
                         "total_s": round(t2 - t0, 2), "cached": False},
             "final_loss": round(info["final_loss"], 3)}
    (tmp / "facts.json").write_text(json.dumps(facts, indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final / "data", final / "model", facts
