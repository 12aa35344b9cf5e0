"""Language modules: a small module per language (bottleneck adapters, a deep prefix or LoRA) trained by language
modelling on that language's unlabelled text, frozen, and swapped in per target language (MAD-X and its prefix and
LoRA analogues).

* :mod:`.text` — where a module's text comes from: files, NTREX-128 and SIB-200 (FLORES) by language code, the
  synthetic world's corpus.
* :mod:`.train` — ``xltune lang-module train``: causal LM (decoders) or masked LM (encoders), resumable, with a
  manifest (text hash, tokens seen, steps, loss curve).
* :mod:`.modules` — a module folder (``manifest.json`` + ``module.safetensors``), finding the modules a run names
  (``method.language_modules``), the language slot inside a model and the method hooks that fill it (the source
  language's module for training, each target language's for its evaluation, the source's as a reported fallback).
"""

KINDS = ("adapter", "prefix", "lora")  # here, torch-free: `xltune lang-module --help` lists them without importing torch
