"""Translation contrastive loss (TCL): pull a sentence towards its translation, away from the batch's other sentences."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..settings import check_positive, setting
from .base import OBJECTIVES, Objective, ObjectiveSettings, ObjectiveSpec, Step, check_temperature, zero_with_graph


def translation_contrast(src: torch.Tensor, tgt: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE with in-batch negatives over cosine similarities.

    With ``u_i = src_i / ||src_i||``, ``v_i = tgt_i / ||tgt_i||`` and ``s_ij = u_i . v_j / T``::

        L = 1/(2B) * sum_i [ -log( exp(s_ii) / sum_j exp(s_ij) )      # src -> tgt
                             -log( exp(s_ii) / sum_j exp(s_ji) ) ]    # tgt -> src

    Row i of ``src`` and of ``tgt`` is a translation pair; every other row of the other side is a negative.
    References: InfoNCE, van den Oord et al. 2018 ("Representation Learning with Contrastive Predictive Coding");
    the symmetric two-direction form as in CLIP (Radford et al. 2021) and for translation pairs in cross-lingual
    alignment work (e.g. Pan et al. 2021, "Multilingual BERT Post-Pretraining Alignment"; Chi et al. 2021, InfoXLM).

    src, tgt: ``[B, H]`` in any float dtype/device; computed in float32. ``B == 1`` has no negatives, so the loss is
    undefined: it returns 0 connected to the graph (backward works, gradients are zero) rather than NaN.
    """
    check_temperature(temperature)
    if src.dim() != 2 or src.shape != tgt.shape:
        raise ValueError(f"translation_contrast: expected src and tgt both [B, H], got {tuple(src.shape)} and {tuple(tgt.shape)}")
    if src.shape[0] < 2:
        return zero_with_graph(src, tgt)
    u = F.normalize(src.float(), dim=-1, eps=1e-8)
    v = F.normalize(tgt.float(), dim=-1, eps=1e-8)
    sim = u @ v.T / temperature
    targets = torch.arange(sim.shape[0], device=sim.device)
    # F.cross_entropy is log-softmax based, i.e. logsumexp-stable even for small temperatures.
    return 0.5 * (F.cross_entropy(sim, targets) + F.cross_entropy(sim.T, targets))


@dataclass
class TranslationContrastSettings(ObjectiveSettings):
    name: str = "translation_contrast"
    temperature: float = setting(0.1, "softmax temperature over cosine similarities")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("objective translation_contrast: temperature", self.temperature)


class TranslationContrast(Objective):
    """Each shot's pooled representation against one of its translations' (the batch's others: negatives; with
    several processes, the whole batch's, gathered)."""

    uses_translations = requires_translations = True

    def prepare(self, run, plan) -> None:
        from .base import check_contrastive_batches

        check_contrastive_batches(run, "translation_contrast")
        self.hidden = run.backbone.hidden_size

    def loss(self, step: Step) -> torch.Tensor | None:
        t = step.translated()
        if step.world > 1:
            if t is None:
                src = tgt = step.out.pooled[:0]
            else:
                rows, tout, _ = t
                src, tgt = step.out.pooled[rows], tout.pooled
            return self._gathered(src, tgt, step.share)
        if t is None:
            return None
        rows, tout, _ = t
        return self.weight * translation_contrast(step.out.pooled[rows], tout.pooled, self.settings.temperature)

    def join(self, model, world: int) -> None:
        if world > 1:
            empty = torch.zeros(0, self.hidden)
            self._gathered(empty, empty, 1.0)

    def _gathered(self, src: torch.Tensor, tgt: torch.Tensor, share: float) -> torch.Tensor:
        """Symmetric InfoNCE over the pairs of every process: this process's pairs are the anchors, all pairs the
        candidates; summed over processes it is :func:`translation_contrast` of the whole batch."""
        from .base import gather_rows

        all_src, start = gather_rows(src.float())
        all_tgt, _ = gather_rows(tgt.float())
        n = all_src.shape[0]
        if n < 2:
            return zero_with_graph(src, tgt)
        u = F.normalize(all_src, dim=-1, eps=1e-8)
        v = F.normalize(all_tgt, dim=-1, eps=1e-8)
        sim = u @ v.T / self.settings.temperature
        mine = slice(start, start + src.shape[0])
        targets = torch.arange(n, device=sim.device)[mine]
        total = F.cross_entropy(sim[mine], targets, reduction="sum") + \
            F.cross_entropy(sim.T[mine], targets, reduction="sum")
        return self.weight * 0.5 * total / n * share


OBJECTIVES.add("translation_contrast", ObjectiveSpec(
    "translation_contrast", TranslationContrastSettings, TranslationContrast,
    "symmetric InfoNCE between each shot and one of its translations (train.translations)", tag="tcl"))
