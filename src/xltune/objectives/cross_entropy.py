"""Cross-entropy for sequence classification ([B, C]) and tagging ([B, L, C])."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import OBJECTIVES, zero_with_graph


@OBJECTIVES.register("cross_entropy")
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
