"""A small synthetic multilingual world for the offline demo: languages, corpus, tasks, tokenizer, tiny XGLM.

Real pretrained models and data hubs are unreachable offline, so the demo brings a world in which cross-lingual
transfer can happen and be controlled (see docs/synthetic.md):

- :class:`WorldConfig` / :class:`LanguageConfig` — languages (script, word order SVO|SOV|VSO, morphology,
  resource level = share of the pretraining corpus), sizes, corpus mix (QA passages, anchors, code-switching), seed.
- :func:`build_world` ``(cfg, out_dir) -> World`` — writes ``corpus/{lang}.txt``, ``nli/{split}-{lang}.tsv``
  (header ``premise\\thypothesis\\tlabel``) and ``ner/{split}-{lang}.tsv`` (XTREME PAN-X token layout), parallel
  by construction (row / sentence i is the same meaning in every language), and ``world.json``.
- :func:`pretrain` ``(world, out_dir, steps=None, cfg=None) -> Path`` — trains a BPE tokenizer (saved as
  ``PreTrainedTokenizerFast`` with ``<s> </s> <pad> <unk>``) and a tiny ``XGLMForCausalLM`` on the corpus.
- :func:`ensure_world_and_model` ``(cfg=None, fresh=False, pretrain_cfg=None) -> (data_dir, model_dir, facts)`` —
  both of the above, cached under ``$XDG_CACHE_HOME/xltune/synthetic/<hash>`` (default ``~/.cache``);
  ``facts`` holds per-language facts (incl. tokenizer fertility) and stage timings.
- :func:`probe_nli` ``(data_dir, model_dir, source=None, per_class=128, pooling="last", mode="joint")
  -> {lang: accuracy}`` — frozen-feature logistic-regression probe (``joint``: premise+hypothesis in one
  sequence, as the pipeline feeds them; ``pair``: InferSent-style [u, v, |u-v|, u*v]).

Status (version 5): with the demo's settings both finetune and deep_prompt transfer to every language of the
default world, clearly above chance, accuracy falling with resource level — numbers in docs/synthetic.md.

Task files for the pipeline: ``task.name=custom``, ``task.data_dir=<data_dir>/nli``, ``file_pattern={split}-{lang}.tsv``,
``text_columns=[premise, hypothesis]``, ``label_column=label``, ``labels=[entailment, contradiction, neutral]``;
NER: ``format=xtreme_tokens``, ``data_dir=<data_dir>/ner``, ``labels=NER_LABELS``.
"""

from .pretrain import PretrainConfig, cache_root, ensure_world_and_model, fertility, pretrain, train_tokenizer
from .probe import probe_nli
from .render import NLI_LABELS
from .tasks import NER_LABELS, SPLITS
from .world import SCRIPTS, LanguageConfig, World, WorldConfig, build_world, default_languages

__all__ = [
    "WorldConfig", "LanguageConfig", "World", "PretrainConfig", "build_world", "pretrain", "ensure_world_and_model",
    "probe_nli", "train_tokenizer", "fertility", "cache_root", "default_languages", "SCRIPTS", "NLI_LABELS",
    "NER_LABELS", "SPLITS",
]
