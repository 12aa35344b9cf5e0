"""xltune: few-shot cross-lingual transfer research toolkit.

The public entry point is :func:`xltune.api.run_experiment`; the CLI (``xltune``) is a thin layer over it.
``xltune.load_run(DIR)`` loads a run folder (``OUTPUT_DIR/RUN_ID``) or a folder of ``xltune export`` as a model with
``.predict(texts)`` / ``.predict_proba(texts)``.
"""

from .version import __version__

__all__ = ["__version__", "load_run"]


def __getattr__(name: str):
    # imported on first use: `import xltune` (and `xltune --version`) stays free of torch
    if name == "load_run":
        from .runs.stored import load_run

        return load_run
    raise AttributeError(f"module 'xltune' has no attribute {name!r}")
