"""What an objective is, and how a run's list of objectives becomes the loss of one micro-batch.

A config lists its objectives, each with its own settings::

    objectives: [{name: cross_entropy}, {name: translation_contrast, weight: 0.5}, {name: label_contrast, weight: 0.5}]

An objective module defines a settings dataclass (an :class:`ObjectiveSettings` subclass), an :class:`Objective`
class (``prepare`` once per run, ``loss`` per micro-batch, ``state_dict`` for what a resumed run must continue from),
the pure loss function it computes (unit-tested on hand-made tensors), and registers
``OBJECTIVES.add(name, ObjectiveSpec(...))``. Dropping a module into ``xltune/objectives/`` registers it.

Normalisation (so gradient accumulation and data parallelism give the update of one big batch): an objective is
either

* ``per_label`` — a sum over the micro-batch's labelled items divided by their *global* count (cross-entropy: the
  examples, or the labelled tokens, of the whole optimizer step), or
* ``per_batch`` — a mean over the micro-batch, weighted by its share of the global batch (contrastive losses,
  distillation). These are added up in list order, starting from a zero on the graph, then weighted once.

Translations of the shots (``train.translations``) are shared: when objectives need them, one translation per shot is
drawn per step from the run's own seeded stream and passed through the model once per micro-batch
(:class:`Step`), whichever objectives read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..errors import XLTuneError, unknown_name
from ..registry import Registry, import_submodules
from ..settings import build, check_non_negative, setting

if TYPE_CHECKING:
    from ..data.records import Example


@dataclass
class ObjectiveSettings:
    """The base of every objective's settings."""

    name: str = setting("cross_entropy", "the objective (see `xltune objectives`)")
    weight: float = setting(1.0, "weight of this term in the training loss")

    def __post_init__(self) -> None:
        check_non_negative(f"objective {self.name}: weight", self.weight)


@dataclass(frozen=True)
class ObjectiveSpec:
    name: str
    settings: type[ObjectiveSettings]
    objective: Callable[[ObjectiveSettings], Objective]
    description: str  # one line, for `xltune objectives`
    tag: str  # short name in the stored objective tag ('tcl', 'lcl', 'kd', ...)


OBJECTIVES: Registry[ObjectiveSpec] = Registry(
    "objective", loader=import_submodules(__package__, skip=("base", "translations")))
BASELINE = "cross_entropy"  # the task loss every run has unless it says otherwise; not part of the tag


def build_objective_settings(data: Any, source: str, key: str) -> ObjectiveSettings:
    if isinstance(data, ObjectiveSettings):
        return data
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, dict) or "name" not in data:
        raise XLTuneError(f"{source}: {key} must be a mapping with a name, e.g. {{name: label_contrast, "
                          f"weight: 0.5}}; got {data!r}")
    spec = OBJECTIVES.get(str(data["name"]), f"{source} ({key}.name)")
    return build(spec.settings, data, source, f"{key}.")


def build_objective_list(data: Any, source: str, key: str = "objectives") -> list[ObjectiveSettings]:
    if data is None:
        return default_objectives()
    if not isinstance(data, list):
        raise XLTuneError(f"{source}: {key} must be a list like [{{name: cross_entropy}}, {{name: label_contrast, "
                          f"weight: 0.5}}], got {data!r}")
    out = [build_objective_settings(item, source, f"{key}[{i}]") for i, item in enumerate(data)]
    names = [o.name for o in out]
    for n in set(names):
        if names.count(n) > 1:
            raise XLTuneError(f"{source}: {key} lists {n} twice")
    return out


def default_objectives() -> list[ObjectiveSettings]:
    return [build_objective_settings({"name": BASELINE}, "default", "objectives[0]")]


def objective_tag(objectives: list[ObjectiveSettings]) -> str:
    """The stored short name: the objectives beyond plain cross-entropy ('none', 'tcl+lcl', 'kd', ...)."""
    parts = []
    for o in objectives:
        if o.name == BASELINE and o.weight == 1.0:
            continue
        tag = OBJECTIVES.get(o.name).tag
        parts.append(tag if o.weight == 1.0 or o.name != BASELINE else f"{tag}x{o.weight:g}")
    return "+".join(parts) or "none"


# -- runtime ---------------------------------------------------------------------------------------------------
class Objective:
    """One term of the training loss. Subclasses set ``reduction`` and implement :meth:`loss`."""

    reduction: ClassVar[str] = "per_batch"  # per_label | per_batch (see the module doc)
    uses_shots: ClassVar[bool] = True  # trains on the labelled shots (distillation brings its own examples)
    uses_translations: ClassVar[bool] = False  # reads the shots' translations (Step.translated)
    requires_translations: ClassVar[bool] = False  # ... and is meaningless without them

    def __init__(self, settings: ObjectiveSettings):
        self.settings = settings
        self.weight = settings.weight

    def prepare(self, run: Any, plan: TrainingPlan) -> None:
        """Once per run, before training: read data, compute targets, add examples to ``plan``."""

    def loss(self, step: Step) -> torch.Tensor | None:
        """This term for one micro-batch, weighted; None when it has nothing to add."""
        raise NotImplementedError

    def join(self, model, world: int) -> None:
        """Called instead of :meth:`loss` on a process with no rows in the step (see ObjectiveSet.join)."""

    def info(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class TrainingPlan:
    """What the run trains on: the shots (when an objective uses them) and examples objectives add (unlabelled
    text with teacher targets, ...). Positions in ``examples`` are the ``example`` index of the encoded features."""

    examples: list[Example] = field(default_factory=list)
    owners: list[str | None] = field(default_factory=list)  # objective that added each example (None: a shot)

    def add(self, examples: list[Example], owner: str | None) -> range:
        start = len(self.examples)
        self.examples.extend(examples)
        self.owners.extend([owner] * len(examples))
        return range(start, len(self.examples))


@dataclass
class Step:
    """One micro-batch, as objectives see it."""

    model: Any
    out: Any  # TransferOutput of the micro-batch
    batch: dict  # collated tensors (input_ids, attention_mask, labels) on the device
    part: list[int]  # feature positions of the micro-batch's rows in the encoded training set
    set: ObjectiveSet
    batch_positions: list[int] | None = None  # the whole optimizer step's positions (all processes)
    world: int = 1  # processes
    step_id: int | None = None  # the optimizer step's number
    _translated: Any = None
    _done: bool = False

    def translated(self):
        """(rows, output, batch) of one translation per row that has one (drawn from the run's stream for the
        whole step, the same on every process), passed through the model once per micro-batch; None when no row
        has a translation."""
        if not self._done:
            self._done = True
            self._translated = self.set.translations.step(self.model, self.part, self.out.logits.device,
                                                          self.batch_positions, self.step_id) \
                if self.set.translations is not None else None
        return self._translated

    @property
    def share(self) -> float:
        """Global rows over this micro-batch's rows: undoes the per-batch weighting for a term that is already a
        mean over the global batch (see gathered contrastive terms)."""
        return len(self.batch_positions or self.part) / max(len(self.part), 1)


class ObjectiveSet:
    """A run's objectives, prepared; called by the training loop once per micro-batch."""

    def __init__(self, objectives: list[Objective], translations=None, plan: TrainingPlan | None = None,
                 tag: str = "none"):
        self.objectives = objectives
        self.translations = translations
        self.plan = plan or TrainingPlan()
        self.tag = tag
        self.per_label = [o for o in objectives if o.reduction == "per_label"]
        self.per_batch = [o for o in objectives if o.reduction == "per_batch"]

    def __call__(self, model, out, batch: dict, part: list[int], *, label_scale: float, batch_scale: float,
                 batch_positions: list[int] | None = None, world: int = 1, step: int | None = None) -> torch.Tensor:
        """The micro-batch loss: per-label terms scaled by ``label_scale`` (world / global labelled count), then
        the per-batch terms' sum scaled by ``batch_scale`` (micro-batch share of the global batch x world)."""
        step = Step(model, out, batch, part, self, batch_positions, world, step)
        loss = None
        for o in self.per_label:
            term = o.loss(step) * label_scale
            loss = term if loss is None else loss + term
        if self.per_batch:
            total = out.pooled.float().sum() * 0.0  # on the graph even when every term is skipped
            for o in self.per_batch:
                term = o.loss(step)
                if term is not None:
                    total = total + term
            total = total * batch_scale
            loss = total if loss is None else loss + total
        if loss is None:
            raise XLTuneError("the run has no training objective")
        return loss

    def join(self, model, batch_positions: list[int], world: int, step: int | None = None) -> None:
        """This process has no rows in the step (fewer examples than processes): take part in whatever the other
        processes do collectively -- the translation draws of the step and the contrastive terms' gathers."""
        if self.translations is not None:
            self.translations.draw(batch_positions, step)
        for o in self.objectives:
            o.join(model, world)

    def info(self) -> dict:
        out: dict = {"tag": self.tag, "objectives": [dataclasses.asdict(o.settings) for o in self.objectives]}
        if self.translations is not None:
            out.update(self.translations.info)
        for o in self.objectives:
            out.update(o.info())
        return out

    def state_dict(self) -> dict:
        return {"translations": self.translations.state_dict() if self.translations is not None else None,
                **{o.settings.name: o.state_dict() for o in self.objectives}}

    def load_state_dict(self, state: dict) -> None:
        if self.translations is not None and state.get("translations") is not None:
            self.translations.load_state_dict(state["translations"])
        for o in self.objectives:
            if o.settings.name in state:
                o.load_state_dict(state[o.settings.name])


def make_objectives(settings: list[ObjectiveSettings]) -> list[Objective]:
    return [OBJECTIVES.get(s.name).objective(s) for s in settings]


def prepare_objectives(run: Any, shots: list[Example]) -> ObjectiveSet:
    """Instantiate and prepare the run's objectives (``run``: the run context: cfg, spec, model, encode, ...)."""
    from .translations import Translations

    cfg = run.cfg
    objectives = make_objectives(cfg.objectives)
    if not objectives:
        raise XLTuneError("objectives is empty: list at least one, e.g. [{name: cross_entropy}]")
    plan = TrainingPlan()
    if any(o.uses_shots for o in objectives):
        plan.add(list(shots), None)
    translations = None
    wanted = [o for o in objectives if o.uses_translations and o.weight > 0]
    if wanted:
        tr = cfg.train.translations
        if tr.languages or tr.parallel_file:
            translations = Translations.prepare(run, shots)
        else:
            needy = [o.settings.name for o in wanted if o.requires_translations]
            if needy:
                raise XLTuneError(f"objective {needy[0]} needs translations of the shots: set "
                                  "train.translations.languages (line-aligned splits of other languages) or "
                                  "train.translations.parallel_file")
    for o in objectives:
        o.prepare(run, plan)
    return ObjectiveSet(objectives, translations, plan, objective_tag(cfg.objectives))


def check_objective_names(names: list[str]) -> None:
    for n in names:
        if n not in OBJECTIVES:
            raise unknown_name("objective", n, OBJECTIVES.names())


def zero_with_graph(*tensors: torch.Tensor) -> torch.Tensor:
    """A float32 scalar 0 that depends on ``tensors`` (zero gradient), so backward() works on a degenerate batch."""
    total = None
    for t in tensors:
        if t.requires_grad:
            # Multiplying the sum (not each element) by 0 keeps the graph; finite inputs give exactly 0.
            part = t.float().sum() * 0.0
            total = part if total is None else total + part
    if total is None:
        device = tensors[0].device if tensors else None
        return torch.zeros((), dtype=torch.float32, device=device)
    return total


def gather_rows(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every process's rows of ``t`` (``[n_k, ...]``, sizes may differ), concatenated in rank order, keeping the
    gradient path to each process's own rows (torch.distributed.nn's all_gather sends gradients back to their
    owners); and where this process's rows start. One process: ``(t, 0)``."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t, 0
    from torch.distributed.nn.functional import all_gather

    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(x) for x in sizes]
    longest = max(sizes)
    padded = torch.cat([t, t.new_zeros((longest - t.shape[0], *t.shape[1:]))]) if t.shape[0] < longest else t
    parts = all_gather(padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)]), sum(sizes[:rank])


def gather_values(t: torch.Tensor) -> torch.Tensor:
    """Every process's ``t`` (1-D, sizes may differ), concatenated in rank order, without gradients (labels)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    world = dist.get_world_size()
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(x) for x in sizes]
    longest = max(sizes)
    padded = torch.cat([t, t.new_zeros(longest - t.shape[0])]) if t.shape[0] < longest else t
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def check_contrastive_batches(run, name: str) -> None:
    """A contrastive term's negatives and positives are the optimizer step's whole batch: gathered across
    processes, but not across gradient-accumulation micro-batches, which are therefore refused."""
    if run.cfg.train.grad_accum > 1:
        raise XLTuneError(f"objective {name} contrasts each item with the whole batch of a step; with "
                          f"train.grad_accum {run.cfg.train.grad_accum} a micro-batch would see 1/"
                          f"{run.cfg.train.grad_accum} of it. Use train.grad_accum: 1 (with a batch_size that fits, "
                          f"or more processes: --processes gathers the batch across them)")


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
