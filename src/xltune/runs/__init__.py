"""One run pipeline: context (built once per seed) -> runner (fit) -> per-language evaluation -> record.

* :mod:`.prepare` loads an experiment's data once for all its seeds;
* :mod:`.context` builds a seed's :class:`~.context.RunContext`: backbone, model and head, encoders, padding side,
  accelerator -- the same for every runner;
* :mod:`.runners` fits: ``train`` (the training loop over the objectives) or ``in_context`` (demonstrations, nothing
  trains); a method's spec names its runner;
* :mod:`.pipeline` runs a seed: fit, :func:`~.pipeline.evaluate_languages` (the one per-language evaluation loop,
  with the method's per-language hook), :func:`~.pipeline.record` (the one place a run is stored);
* :mod:`.stored` rebuilds a stored run's model (a distillation teacher; predict / eval on new data).
"""
