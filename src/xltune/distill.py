"""Knowledge distillation to the target languages, as a run: a student (any method, from a config) trained on the
``distillation`` objective alone -- a stored run (the teacher) labels unlabelled target-language text with its
temperature-softened distributions (see :mod:`xltune.objectives.distillation`). The student is evaluated and stored
like any run (objective tag ``kd``); its variant includes the teacher and the text, so reruns are skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import XLTuneError


@dataclass(frozen=True)
class UnlabelledSource:
    """Where one language's unlabelled text comes from: a plain-text ``path``, or ``split`` of the task files."""

    lang: str
    path: str | None = None
    split: str | None = None

    def describe(self) -> str:
        return self.path if self.path else f"{self.split} split (labels dropped)"


def distillation_settings(teacher_run_id: str, sources: Sequence[UnlabelledSource], *, teacher_store=None,
                          temperature: float = 2.0, max_examples: int = 1000) -> dict:
    """The ``distillation`` objective of a student distilled from ``teacher_run_id`` on ``sources``."""
    splits = {s.split for s in sources if s.split}
    if len(splits) > 1:
        raise XLTuneError(f"one split for all languages, please (got {', '.join(sorted(splits))})")
    langs = [s.lang for s in sources]
    if len(set(langs)) != len(langs):
        raise XLTuneError(f"each language once, please: got {', '.join(langs)}")
    return {"name": "distillation", "teacher": teacher_run_id,
            "teacher_store": str(teacher_store) if teacher_store else None, "temperature": temperature,
            "text": {s.lang: s.path for s in sources if s.path}, "split": next(iter(splits), None),
            "languages": [s.lang for s in sources if s.split], "max_examples": max_examples}


def distill(teacher_run_id: str, sources: Sequence[UnlabelledSource], student_cfg=None, *,
            teacher_store: str | Path | None = None, temperature: float = 2.0, max_examples: int = 1000,
            force: bool = False, log: Callable[[str], None] = print):
    """Distil the stored run ``teacher_run_id`` into a student on the unlabelled text of ``sources``.
    ``student_cfg`` None: the teacher's own config (same method and model). Returns one RunResult per seed."""
    from .api import run_experiment
    from .config import ExperimentConfig

    if not sources:
        raise XLTuneError("distillation needs unlabelled text in at least one target language")
    if temperature <= 0:
        raise XLTuneError(f"distillation temperature must be > 0, got {temperature}")
    store = teacher_store or (student_cfg.store if student_cfg else None)
    if store is None:
        raise XLTuneError("say which store holds the teacher run (teacher_store / --teacher-store)")
    teacher_cfg = load_stored_run_config(teacher_run_id, store)  # the teacher must exist before anything runs
    data = (student_cfg or teacher_cfg).to_dict()
    data["objectives"] = [distillation_settings(teacher_run_id, sources, teacher_store=teacher_store,
                                                temperature=temperature, max_examples=max_examples)]
    cfg = ExperimentConfig.from_dict(data, "distill")
    return run_experiment(copy.deepcopy(cfg), force=force, log=log)


def load_stored_run_config(run_id: str, store):
    """The stored config of ``run_id`` (to train a student like its teacher)."""
    from .config import ExperimentConfig
    from .errors import quiet_notes
    from .store import Store

    if not Path(store).is_file():
        raise XLTuneError(f"results store {store} does not exist")
    with Store(store) as s:
        stored = s.stored_id(run_id)
        runs = s.runs(run_id=stored) if stored else []
    if not runs:
        raise XLTuneError(f"teacher run {run_id!r} is not in {store}")
    with quiet_notes():
        return ExperimentConfig.from_dict(runs[0]["config"], f"run {run_id} in {store}")
