"""The settings of ``xltune lang-module train`` (torch-free: the command's flags are built from these fields)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import XLTuneError
from ..settings import check_choice, check_positive, check_unit, setting
from . import KINDS

DEFAULT_LR = {"adapter": 1e-3, "lora": 1e-3, "prefix": 1e-2}


@dataclass
class ModuleTrainConfig:
    kind: str = setting("adapter", "adapter (bottleneck adapters, MAD-X) | prefix (a deep key/value prefix) | lora")
    steps: int = setting(1000, "optimizer steps training the module")
    batch_size: int = setting(16, "lines per step")
    lr: float | None = setting(None, "peak learning rate (null: 1e-3 for adapter and lora, 1e-2 for prefix)")
    warmup_ratio: float = setting(0.05, "share of steps with linear warmup, then linear decay")
    max_length: int = setting(128, "longest line in tokens (longer lines are cut)")
    mlm_probability: float = setting(0.15, "encoders: share of tokens masked")
    seed: int = setting(0, "data order, masking, dropout and the module's initialisation")
    reduction_factor: float = setting(2.0, "adapter: hidden size / bottleneck width (MAD-X's language adapters: 2)")
    invertible: bool = setting(True, "adapter: an invertible adapter on the token embeddings (MAD-X)")
    invertible_reduction_factor: float = setting(2.0, "adapter: reduction factor of the invertible adapter's MLPs")
    prefix_length: int = setting(16, "prefix: key/value vectors per layer")
    prefix_positions: str = setting("shift", "prefix: shift (inputs start after the prefix) | keep (at 0); the "
                                             "lang_prefix method must use the same")
    r: int = setting(8, "lora: rank")
    alpha: int = setting(16, "lora: scaling alpha")
    target_modules: list[str] = setting([], "lora: modules to adapt (empty: peft's default for the architecture)")
    head_steps: int | None = setting(None, "a fresh MLM head: steps fitting it alone first (null: steps / 5)")
    dev_lines: int = setting(200, "lines held out for the dev loss (before / after the module); 0: none")
    save_every: int = setting(50, "steps between resume checkpoints")

    def __post_init__(self) -> None:
        check_choice("--kind", self.kind, KINDS)
        for key in ("steps", "batch_size", "max_length", "reduction_factor", "invertible_reduction_factor",
                    "prefix_length", "r", "save_every"):
            check_positive(f"--{key.replace('_', '-')}", getattr(self, key))
        check_unit("--warmup-ratio", self.warmup_ratio)
        if not 0 < self.mlm_probability < 1:
            raise XLTuneError(f"--mlm-probability must be in (0, 1), got {self.mlm_probability}")
        check_choice("--prefix-positions", self.prefix_positions, ("shift", "keep"))
        if self.lr is not None:
            check_positive("--lr", self.lr)

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.kind]

    def architecture(self) -> dict:
        """What the method must rebuild to hold this module."""
        if self.kind == "adapter":
            return {"reduction_factor": self.reduction_factor, "invertible": self.invertible,
                    "invertible_reduction_factor": self.invertible_reduction_factor}
        if self.kind == "prefix":
            return {"prefix_length": self.prefix_length, "prefix_positions": self.prefix_positions}
        return {"r": self.r, "alpha": self.alpha, "target_modules": list(self.target_modules)}
