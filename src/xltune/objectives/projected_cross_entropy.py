"""Projected cross-entropy (tagging with translations: translate-train for token tasks).

The shots' translations, labelled by projecting each shot's tags through an argmax word alignment computed with the
run's own backbone (:mod:`xltune.objectives.translations`), are extra labelled training sentences, trained in the
same micro-batch as their source sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.encode import IGNORE
from ..errors import XLTuneError
from .base import OBJECTIVES, Objective, ObjectiveSettings, ObjectiveSpec, Step
from .cross_entropy import cross_entropy


@dataclass
class ProjectedCrossEntropySettings(ObjectiveSettings):
    name: str = "projected_cross_entropy"


class ProjectedCrossEntropy(Objective):
    uses_translations = requires_translations = True

    def prepare(self, run, plan) -> None:
        if run.spec.kind != "token":
            raise XLTuneError(f"objective projected_cross_entropy is for tagging tasks; {run.spec.name} is a "
                              f"{run.spec.kind} task")

    def loss(self, step: Step) -> torch.Tensor | None:
        t = step.translated()
        if t is None:
            return None
        _, tout, tbatch = t
        return self.weight * cross_entropy(tout.logits, tbatch["labels"], IGNORE)


OBJECTIVES.add("projected_cross_entropy", ObjectiveSpec(
    "projected_cross_entropy", ProjectedCrossEntropySettings, ProjectedCrossEntropy,
    "tagging: cross-entropy on the shots' translations labelled by tag projection", tag="proj"))
