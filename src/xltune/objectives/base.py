"""The objective registry and the small helpers every loss shares.

Each loss is a pure function of tensors registered by name (``OBJECTIVES.get("label_contrast")``). Losses compute in
float32 whatever the input dtype (bf16 logits lose too much precision in a softmax over a batch), return a float32
scalar, and never return NaN for degenerate batches: where a loss is undefined (no negatives, no positives, nothing
unmasked) it returns a zero that is still connected to the inputs' graph, so ``loss.backward()`` works unchanged.
"""

from __future__ import annotations

import torch

from ..registry import Registry

OBJECTIVES: Registry = Registry("objective")


def zero_with_graph(*tensors: torch.Tensor) -> torch.Tensor:
    """A float32 scalar 0 that depends on ``tensors`` (zero gradient), so backward() works on a degenerate batch."""
    total = None
    for t in tensors:
        if t.requires_grad:
            # Multiplying the sum (not each element) by 0 keeps the graph; finite inputs give exactly 0.
            part = t.float().sum() * 0.0
            total = part if total is None else total + part
    if total is None:
        device = tensors[0].device if tensors else None
        return torch.zeros((), dtype=torch.float32, device=device)
    return total


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
