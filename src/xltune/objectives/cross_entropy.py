"""Cross-entropy for sequence classification ([B, C]) and tagging ([B, L, C]): the task loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.encode import IGNORE
from .base import OBJECTIVES, Objective, ObjectiveSettings, ObjectiveSpec, Step, zero_with_graph


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean negative log-likelihood over the positions whose label is not ``ignore_index``.

    ``L = -1/|V| * sum_{n in V} log softmax(z_n)[y_n]``, ``V = {n : y_n != ignore_index}``.

    logits: ``[B, C]`` (sequence) or ``[B, L, C]`` (token); labels: ``[B]`` or ``[B, L]``. Computed in float32 with
    torch's log-softmax (logsumexp-stable). A batch with every label ignored gives 0 (not NaN), still on the graph.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"cross_entropy: logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    flat_labels = labels.reshape(-1)
    if not bool((flat_labels != ignore_index).any()):
        return zero_with_graph(logits)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), flat_labels, ignore_index=ignore_index)


def summed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over the labelled positions (the caller divides by the global count), in float32."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                           reduction="sum")


@dataclass
class CrossEntropySettings(ObjectiveSettings):
    name: str = "cross_entropy"


class CrossEntropy(Objective):
    """Mean cross-entropy over the global batch's labelled items (examples; labelled tokens for tagging)."""

    reduction = "per_label"

    def loss(self, step: Step) -> torch.Tensor:
        return summed_cross_entropy(step.out.logits, step.batch["labels"]) * self.weight


OBJECTIVES.add("cross_entropy", ObjectiveSpec("cross_entropy", CrossEntropySettings, CrossEntropy,
                                              "the task loss on the labelled shots", tag="ce"))
