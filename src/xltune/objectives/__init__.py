"""Training objectives: one module each (settings, the pure loss, the objective), registered in :data:`OBJECTIVES`.

The pure losses are importable from here; a config lists objectives by name (see :mod:`xltune.objectives.base`).
"""

from .base import OBJECTIVES, Objective, ObjectiveSettings, ObjectiveSpec, objective_tag, zero_with_graph
from .cross_entropy import cross_entropy
from .distillation import distillation
from .label_contrast import label_contrast
from .translation_contrast import translation_contrast

__all__ = ["OBJECTIVES", "Objective", "ObjectiveSettings", "ObjectiveSpec", "cross_entropy", "distillation",
           "label_contrast", "objective_tag", "translation_contrast", "zero_with_graph"]
