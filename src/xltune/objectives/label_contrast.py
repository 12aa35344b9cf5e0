"""Label contrastive loss (LCL): supervised contrastive learning over sentence or token representations."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.encode import IGNORE
from ..settings import check_positive, setting
from .base import OBJECTIVES, Objective, ObjectiveSettings, ObjectiveSpec, Step, check_temperature, zero_with_graph


def label_contrast(
    reps: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, ignore_index: int = -100
) -> torch.Tensor:
    """Supervised contrastive loss, the "L_out" form of Khosla et al. 2020 ("Supervised Contrastive Learning").

    Over the kept items (``labels != ignore_index``), with ``z_i = reps_i / ||reps_i||`` and ``s_ia = z_i . z_a / T``,
    ``A(i)`` = all kept items but i, ``P(i) = {p in A(i) : y_p = y_i}``::

        L = 1/|I| * sum_{i in I} -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )

    where ``I`` is the set of anchors with at least one positive (anchors without a positive are skipped).

    reps: ``[N, H]``; labels: ``[N]`` (int). For tagging, flatten token representations to ``[N, H]`` and pass
    ``ignore_index`` for sub-word continuations, padding and (to leave them out) 'O' tokens. To contrast across
    languages, concatenate source and translation representations with their (shared) labels.
    Returns 0 on the graph (not NaN) when no anchor has a positive (a single item, or all labels distinct).
    Identical representations are fine: every similarity is 1/T and the loss is exactly ``log(N - 1)``, finite.
    """
    check_temperature(temperature)
    if reps.dim() != 2 or labels.dim() != 1 or reps.shape[0] != labels.shape[0]:
        raise ValueError(f"label_contrast: expected reps [N, H] and labels [N], got {tuple(reps.shape)} and {tuple(labels.shape)}")
    keep = labels != ignore_index
    z = F.normalize(reps[keep].float(), dim=-1, eps=1e-8)
    y = labels[keep]
    n = z.shape[0]
    if n < 2:
        return zero_with_graph(reps)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        return zero_with_graph(reps)
    sim = z @ z.T / temperature
    # The anchor itself is excluded from the denominator A(i): -inf before logsumexp.
    log_denominator = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    log_prob = sim - log_denominator
    # where() rather than multiply-by-mask: keeps any non-finite value off the unselected entries' gradients.
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    per_anchor = -pos_log_prob[anchors] / n_pos[anchors]
    return per_anchor.mean()


def label_contrast_sum(reps: torch.Tensor, labels: torch.Tensor, anchors: slice, temperature: float = 0.1,
                       ignore_index: int = -100) -> tuple[torch.Tensor, int]:
    """:func:`label_contrast` split for a batch gathered across processes: the *sum* of the per-anchor losses over
    the items in ``anchors`` (this process's rows of ``reps``), with every other item as a candidate, and the number
    of anchors with a positive in the whole batch (the mean's denominator, the same on every process). Summed over
    processes and divided by the count it is exactly :func:`label_contrast` of the whole batch."""
    check_temperature(temperature)
    keep = labels != ignore_index
    index = torch.arange(labels.shape[0], device=labels.device)
    mine = keep & (index >= (anchors.start or 0)) & (index < anchors.stop)
    z_all = F.normalize(reps[keep].float(), dim=-1, eps=1e-8)
    y = labels[keep]
    mine_kept = mine[keep]
    n = z_all.shape[0]
    if n < 2:
        return zero_with_graph(reps), 0
    self_mask = torch.eye(n, dtype=torch.bool, device=z_all.device)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    count = int((n_pos > 0).sum())
    rows = mine_kept & (n_pos > 0)
    if count == 0 or not bool(rows.any()):
        return zero_with_graph(reps), count
    sim = z_all[rows] @ z_all.T / temperature
    log_denominator = torch.logsumexp(sim.masked_fill(self_mask[rows], float("-inf")), dim=1, keepdim=True)
    log_prob = sim - log_denominator
    pos_log_prob = torch.where(positives[rows], log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return (-pos_log_prob / n_pos[rows]).sum(), count


@dataclass
class LabelContrastSettings(ObjectiveSettings):
    name: str = "label_contrast"
    temperature: float = setting(0.1, "softmax temperature over cosine similarities")
    exclude_o: bool = setting(True, "tagging: leave 'O' tokens out of the contrast")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("objective label_contrast: temperature", self.temperature)


class LabelContrast(Objective):
    """Supervised contrast over the micro-batch: sentence tasks the shots' pooled representations and, with
    translations, their translations' (same label: cross-lingual positives, the "dual" part); tagging the labelled
    token representations of the shots and of their projected translations ('O' left out by default)."""

    uses_translations = True

    def prepare(self, run, plan) -> None:
        from .base import check_contrastive_batches

        check_contrastive_batches(run, "label_contrast")
        spec = run.spec
        self.token_task = spec.kind == "token"
        self.hidden = run.backbone.hidden_size
        self.o_index = spec.labels.index("O") if (self.token_task and self.settings.exclude_o
                                                  and "O" in spec.labels) else None

    def _items(self, step: Step) -> tuple[torch.Tensor, torch.Tensor]:
        """This micro-batch's items: representations and labels (shots, then their translations)."""
        out, batch = step.out, step.batch
        t = step.translated()
        if self.token_task:
            reps = [out.hidden.reshape(-1, out.hidden.shape[-1])]
            labels = [batch["labels"].reshape(-1)]
            if t is not None:
                _, tout, tbatch = t
                reps.append(tout.hidden.reshape(-1, tout.hidden.shape[-1]))
                labels.append(tbatch["labels"].reshape(-1))
            y = torch.cat(labels)
            if self.o_index is not None:
                y = y.masked_fill(y == self.o_index, IGNORE)
            return torch.cat(reps), y
        reps, y = [out.pooled], [batch["labels"]]
        if t is not None:
            rows, tout, _ = t
            reps.append(tout.pooled)
            y.append(batch["labels"][rows])
        return torch.cat(reps), torch.cat(y)

    def _gathered(self, reps: torch.Tensor, labels: torch.Tensor, step_share: float) -> torch.Tensor:
        """The term over the whole batch of every process (see label_contrast_sum), weighted."""
        from .base import gather_rows, gather_values

        all_reps, start = gather_rows(reps.float())
        all_labels = gather_values(labels)
        total, count = label_contrast_sum(all_reps, all_labels, slice(start, start + reps.shape[0]),
                                          self.settings.temperature, IGNORE)
        if count == 0:
            return zero_with_graph(reps)
        return self.weight * total / count * step_share

    def join(self, model, world: int) -> None:
        if world > 1:
            self._gathered(torch.zeros(0, self.hidden), torch.zeros(0, dtype=torch.long), 1.0)

    def loss(self, step: Step) -> torch.Tensor:
        if step.world > 1:  # the batch is spread over processes: contrast with all of it
            reps, labels = self._items(step)
            return self._gathered(reps, labels, step.share)
        out, batch, temp = step.out, step.batch, self.settings.temperature
        t = step.translated()
        if self.token_task:
            reps = [out.hidden.reshape(-1, out.hidden.shape[-1])]
            labels = [batch["labels"].reshape(-1)]
            if t is not None:
                _, tout, tbatch = t
                reps.append(tout.hidden.reshape(-1, tout.hidden.shape[-1]))
                labels.append(tbatch["labels"].reshape(-1))
            y = torch.cat(labels)
            if self.o_index is not None:
                y = y.masked_fill(y == self.o_index, IGNORE)
            return self.weight * label_contrast(torch.cat(reps), y, temp, IGNORE)
        reps, y = [out.pooled], [batch["labels"]]
        if t is not None:  # translations share their source's label: cross-lingual positives
            rows, tout, _ = t
            reps.append(tout.pooled)
            y.append(batch["labels"][rows])
        return self.weight * label_contrast(torch.cat(reps), torch.cat(y), temp, IGNORE)


OBJECTIVES.add("label_contrast", ObjectiveSpec(
    "label_contrast", LabelContrastSettings, LabelContrast,
    "supervised contrast: same-label sentences (or tokens) together, across languages with translations", tag="lcl"))
