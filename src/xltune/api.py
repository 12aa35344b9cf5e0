"""The one entry point the CLI and the tests use: :func:`run_experiment`.

config -> task spec -> reader -> few-shot sampler -> encoder -> backbone + method + head -> runner (train loop over
the objectives, or in-context) -> per-language evaluation -> results store. One run per seed; a run already in the
store is skipped. The pipeline itself lives in :mod:`xltune.runs`.
"""

from __future__ import annotations

from .runs.pipeline import RunResult, environment, run_experiment, summary_table
from .runs.prepare import Prepared, prepare

__all__ = ["Prepared", "RunResult", "environment", "prepare", "run_experiment", "summary_table"]
