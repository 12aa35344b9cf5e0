"""`xltune export --store S --run RUN_ID --out DIR`: a stored run as what the ecosystem loads (a transformers model
or a peft adapter, checked to predict as xltune does) or, where there is no exact equivalent, xltune's own folder
for `xltune.load_run(DIR)`; with a model card (README.md) holding the per-language results."""

from __future__ import annotations

from .predict import add_run_arguments


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a stored run: transformers / peft (checked) or xltune.load_run folder",
                       description="Encoders on token tasks: a transformers model (finetune) or a peft adapter (LoRA, "
                                   "IA3, prompt tuning; head in modules_to_save), loaded back and checked to give "
                                   "xltune's predictions. Anything without an exact equivalent (decoders, sentence "
                                   "heads, the verbalizer, deep prompts with prefix_positions: keep): xltune's own "
                                   "folder, which xltune.load_run(DIR) loads; the model card says why. Every export "
                                   "has a README.md model card with the run's per-language results.")
    add_run_arguments(p, folder=True)
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (replaced only with --force)")
    p.add_argument("--as", dest="as_", default="auto", choices=("auto", "xltune"),
                   help="auto: transformers/peft where exact, else xltune's folder; xltune: xltune's folder always")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    from ..errors import XLTuneError
    from ..export import export_run
    from ..runs.folder import shown_path
    from .predict import load, run_config

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise XLTuneError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise XLTuneError(f"--out {out} exists and is not empty; --force replaces it")
    run_config(args)  # the run is checked before its model loads
    results, evaluations = stored_results(args)
    run = load(args, float32=True)  # exported weights are float32; compared in float32
    done = export_run(run, out, results=results, evaluations=evaluations, force=args.force,
                      xltune_only=args.as_ == "xltune")
    v = done.verified or {}
    what = {"transformers": "a transformers model (AutoModelForTokenClassification)",
            "peft": "a peft adapter (PeftModel over AutoModelForTokenClassification)",
            "xltune": "xltune's own folder (xltune.load_run)"}[done.kind]
    print(f"exported run {run.run_id} to {shown_path(done.out)}/ as {what}; checked: the same predictions on "
          f"{v.get('examples')} examples (max |logit difference| {v.get('max_abs_diff', 0):.2g}); model card "
          f"{shown_path(done.out / 'README.md')}")
    if done.reason:
        print(f"why not transformers/peft: {done.reason}")
    return 0


def stored_results(args) -> tuple[dict | None, list]:
    """The run's per-language metrics and its evaluations, from the store (None, []: the run folder's own)."""
    if not args.store:
        return None, []
    from ..runs.stored import stored_row
    from ..store import Store

    run_id = stored_row(args.run, args.store)["run_id"]
    with Store(args.store) as s:
        rows = s.metrics(run_id=run_id)
        evaluations = s.evaluations(run_id=run_id)
        for ev in evaluations:
            ev["metrics"] = s.eval_metrics(eval_id=ev["eval_id"])
    languages: dict[str, dict] = {}
    split = rows[0]["split"] if rows else None
    for m in rows:
        if m["split"] == split:
            languages.setdefault(m["lang"], {"n": m["n"]})[m["metric"]] = m["value"]
    return {"split": split, "languages": languages}, evaluations
