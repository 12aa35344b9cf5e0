"""Frozen-feature transfer probe: does the pretrained tiny model carry NLI across languages?

Hidden states of the frozen model (last token or mean over tokens) -> multinomial logistic regression trained on
``per_class`` source-language NLI train examples -> accuracy on each language's test file. Hand-written (a few
lines of torch) rather than scikit-learn, which xltune does not depend on.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import torch

from .render import NLI_LABELS


def read_nli(path: Path) -> tuple[list[tuple[str, str]], list[int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(r["premise"], r["hypothesis"]) for r in rows], [NLI_LABELS.index(r["label"]) for r in rows]


@torch.no_grad()
def features(model, tokenizer, pairs: list[tuple[str, str]], pooling: str = "last", layer: int = -1,
             batch_size: int = 64, mode: str = "joint") -> torch.Tensor:
    """``joint``: premise and hypothesis in one sequence, as the pipeline feeds them. ``pair``: each side
    encoded alone, features [u, v, |u - v|, u * v] (the classic sentence-pair probe of InferSent/SentEval),
    which makes premise-hypothesis overlap linearly readable without the model having to compute it."""
    if mode == "pair":
        u = features(model, tokenizer, [(p, "") for p, _ in pairs], pooling, layer, batch_size)
        v = features(model, tokenizer, [(h, "") for _, h in pairs], pooling, layer, batch_size)
        return torch.cat([u, v, (u - v).abs(), u * v], -1)
    out = []
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i:i + batch_size]
        if all(not h for _, h in chunk):
            enc = tokenizer([p for p, _ in chunk], return_tensors="pt", padding=True)
        else:
            enc = tokenizer([p for p, _ in chunk], [h for _, h in chunk], return_tensors="pt", padding=True)
        hs = model(**enc, output_hidden_states=True).hidden_states[layer]
        mask = enc["attention_mask"].unsqueeze(-1).float()
        if pooling == "last":  # right padding: the last real token sits at length - 1
            out.append(hs[torch.arange(len(hs)), enc["attention_mask"].sum(1) - 1])
        else:
            out.append((hs * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


def fit_logreg(x: torch.Tensor, y: torch.Tensor, classes: int = 3, l2: float = 1e-2, steps: int = 300):
    mean, std = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")
    xs = (x - mean) / std

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xs @ w + b, y) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lambda z: (((z - mean) / std) @ w + b).argmax(-1)


def probe_nli(data_dir: str | Path, model_dir: str | Path, source: str | None = None, per_class: int = 128,
              pooling: str = "last", layer: int = -1, seed: int = 0, max_test: int = 600,
              mode: str = "joint") -> dict[str, float]:
    """Accuracy (%) per language of a logistic regression on frozen features trained in ``source`` only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    nli = Path(data_dir) / "nli"
    langs = sorted({p.stem.split("-", 1)[1] for p in nli.glob("test-*.tsv")})
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    source = source or langs[0]
    pairs, labels = read_nli(nli / f"train-{source}.tsv")
    rng = random.Random(seed)
    idx = [i for c in range(3) for i in rng.sample([j for j, l in enumerate(labels) if l == c], per_class)]
    clf = fit_logreg(features(model, tok, [pairs[i] for i in idx], pooling, layer, mode=mode),
                     torch.tensor([labels[i] for i in idx]))
    acc = {}
    for lang in langs:
        pairs, labels = read_nli(nli / f"test-{lang}.tsv")
        pred = clf(features(model, tok, pairs[:max_test], pooling, layer, mode=mode))
        acc[lang] = round(100.0 * (pred == torch.tensor(labels[:max_test])).float().mean().item(), 1)
    return acc
