"""Knowledge distillation: match a teacher's temperature-softened output distribution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import OBJECTIVES, check_temperature, zero_with_graph


@OBJECTIVES.register("distillation")
def distillation(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))`` averaged over the (unmasked) positions — Hinton et al. 2015,
    "Distilling the Knowledge in a Neural Network" (the T^2 keeps gradient magnitudes comparable across T).

    Per position n: ``KL_n = sum_c p_nc (log p_nc - log q_nc)`` with ``p = softmax(teacher/T)``,
    ``q = softmax(student/T)`` (log-softmax, so logsumexp-stable); ``L = T^2 * mean_{n : mask_n} KL_n``.

    logits: ``[B, C]`` (sequence) or ``[B, L, C]`` (token); mask: ``[B]`` / ``[B, L]`` bool (True = counted), e.g.
    first sub-word of each word for tagging; None counts every position. The batch mean is over counted positions
    (tokens, not sentences). The teacher is a target: it is detached. Computed in float32. No counted position -> 0
    on the graph.
    """
    check_temperature(temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"distillation: student {tuple(student_logits.shape)} != teacher {tuple(teacher_logits.shape)}")
    if mask is not None and mask.shape != student_logits.shape[:-1]:
        raise ValueError(f"distillation: mask {tuple(mask.shape)} does not match logits {tuple(student_logits.shape)}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    kl = F.kl_div(log_q, log_p, log_target=True, reduction="none").sum(dim=-1)
    if mask is not None:
        mask = mask.to(device=kl.device, dtype=torch.bool)
        if not bool(mask.any()):
            return zero_with_graph(student_logits)
        kl = kl[mask]
    return kl.mean() * temperature**2
