"""xltune: few-shot cross-lingual transfer research toolkit.

The public entry point is :func:`xltune.api.run_experiment`; the CLI (``xltune``) is a thin layer over it.
"""

__version__ = "0.1.0"
