"""Deep prompt tuning (P-tuning v2): per-layer key/value prefixes (+ optional MLP) and the head train."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import check_choice, check_positive, check_unit, setting
from .base import METHODS, MethodSettings, MethodSpec, PeftExport, freeze, transfer_model


@dataclass
class DeepPromptSettings(MethodSettings):
    name: str = "deep_prompt"
    prefix_length: int = setting(16, "key/value prefix length per layer")
    prefix_projection: bool = setting(False, "reparameterise prefixes through a 2-layer MLP (P-tuning v2 option)")
    prefix_hidden_size: int = setting(512, "hidden size of the reparameterisation MLP")
    prefix_positions: str = setting("shift", "shift (input positions start after the prefix, as peft and P-tuning "
                                             "v2) | keep (input positions start at 0, as in pretraining)")
    dropout: float = setting(0.0, "dropout on the prefix vectors")

    def __post_init__(self) -> None:
        check_positive("method.prefix_length", self.prefix_length)
        check_positive("method.prefix_hidden_size", self.prefix_hidden_size)
        check_choice("method.prefix_positions", self.prefix_positions, ("shift", "keep"))
        check_unit("method.dropout", self.dropout)


def build(backbone, settings: DeepPromptSettings, task_kind: str, num_labels: int, model_cfg):
    from ..models.prompts import DeepPrompt

    layers, kv_heads, head_dim = backbone.require_layer_layout("method deep_prompt")
    freeze(backbone.model)
    prompt = DeepPrompt(layers, kv_heads, head_dim, settings.prefix_length, backbone.hidden_size,
                        projection=settings.prefix_projection, projection_hidden=settings.prefix_hidden_size,
                        dropout=settings.dropout)
    return transfer_model(backbone, model_cfg, task_kind, num_labels, deep_prompt=prompt,
                          shift_positions=settings.prefix_positions == "shift")


def peft_export(backbone, settings: DeepPromptSettings) -> PeftExport | str:
    """peft's prefix tuning stores prefixes in the same layout (keys of layer l in slot 2l, values in 2l+1; the same
    MLP with prefix_projection) and shifts input positions by the prefix, as prefix_positions: shift does."""
    if settings.prefix_positions != "shift":
        return ("deep prompts with method.prefix_positions: keep start the input's positions at 0 after the prefix; "
                "peft's prefix tuning shifts them by the prefix length")
    from peft import PrefixTuningConfig

    return PeftExport(PrefixTuningConfig(num_virtual_tokens=settings.prefix_length,
                                         prefix_projection=settings.prefix_projection,
                                         encoder_hidden_size=settings.prefix_hidden_size),
                      rename={"deep_prompt.": "prompt_encoder.default."})


METHODS.add("deep_prompt", MethodSpec(
    "deep_prompt", DeepPromptSettings, build,
    "deep prompt tuning (P-tuning v2): trainable key/value prefixes at every layer and the head; backbone frozen",
    trains=lambda n: n.startswith(("deep_prompt.", "head.")), renamed={"prompt_dropout": "dropout"},
    peft=peft_export))
