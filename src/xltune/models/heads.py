"""Pooling and task heads (dropout + linear), on top of the backbone's last hidden states."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import unknown_name

POOLINGS = ("last", "first", "mean")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Sequence representation [B, H] from hidden states [B, L, H] and the 0/1 mask [B, L].

    last: the last non-pad token (right- or left-padded alike); first: the first non-pad token; mean: masked mean.
    """
    mask = mask.to(hidden.device)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if how == "last":
        idx = torch.where(mask.bool(), positions, -1).amax(dim=1).clamp(min=0)
        return hidden[rows, idx]
    if how == "first":
        big = mask.shape[1]
        idx = torch.where(mask.bool(), positions, big).amin(dim=1).clamp(max=big - 1)
        return hidden[rows, idx]
    if how == "mean":
        w = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
    raise unknown_name("pooling", how, POOLINGS)


class SequenceHead(nn.Module):
    """Dropout + linear on a pooled representation: [B, H] -> [B, num_labels]."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(pooled))


class TokenHead(SequenceHead):
    """The same per position: [B, L, H] -> [B, L, num_labels]."""
