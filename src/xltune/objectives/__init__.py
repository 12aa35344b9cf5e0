"""Training objectives as pure functions of tensors, registered by name.

Importing this package registers every objective in :data:`OBJECTIVES`.
"""

from .base import OBJECTIVES, zero_with_graph
from .cross_entropy import cross_entropy
from .distillation import distillation
from .label_contrast import label_contrast
from .translation_contrast import translation_contrast

__all__ = ["OBJECTIVES", "cross_entropy", "distillation", "label_contrast", "translation_contrast", "zero_with_graph"]
