"""`xltune predict --store S --run RUN_ID --input FILE --out FILE`: a stored run's labels and probabilities for the
examples of a file (JSONL or TSV), without training. See :mod:`xltune.predict` for the input and output formats."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="label a file's examples with a stored run (labels and probabilities)",
                       description="Rebuild a stored run's model from its checkpoint and write its label and "
                                   "probabilities for every example of --input: a file in the task's format (its "
                                   "reader), plain text (one example per line; pair tasks: TAB between the texts; "
                                   "token tasks: words separated by spaces) or JSONL with the task's text fields.")
    add_run_arguments(p, folder=True)
    p.add_argument("--input", required=True, metavar="FILE", help="the examples (task format, .txt or .jsonl)")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write predictions (.jsonl or .tsv)")
    p.add_argument("--input-format", default="auto", choices=("auto", "task", "text", "jsonl"),
                   help="how to read --input (auto: .jsonl/.json -> jsonl, .txt -> text, else the task's format)")
    p.add_argument("--format", default="auto", choices=("auto", "jsonl", "tsv"),
                   help="output format (auto: .tsv -> tsv, else jsonl)")
    p.add_argument("--lang", default="", help="the inputs' language (picks a per-language template for verbalizer "
                                              "runs; names the inputs' ids)")
    p.add_argument("--batch-size", type=int, default=64, help="examples per forward pass (results do not depend on it)")
    p.set_defaults(func=main)


def add_run_arguments(p, folder: bool = False) -> None:
    """--store and --run (or --run-dir), --device: which stored run, on which device (predict, eval, export)."""
    p.add_argument("--store", metavar="PATH", help="results store holding the run (with --run)")
    p.add_argument("--run", metavar="RUN_ID", help="the run's id (or a unique prefix); `xltune runs` lists them")
    if folder:
        p.add_argument("--run-dir", metavar="DIR", help="or a run folder (OUTPUT_DIR/RUN_ID) or a folder of "
                                                        "`xltune export` for decoders, instead of --store/--run")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda | cuda:1 ...")


def device_of(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_config(args):
    """The config of the run named by --store/--run or --run-dir, checked (cheap: no model is loaded)."""
    from ..errors import XLTuneError
    from ..runs.stored import folder_config, stored_config

    run_dir = getattr(args, "run_dir", None)
    if run_dir and (args.store or args.run):
        raise XLTuneError("give either --store/--run or --run-dir, not both")
    if run_dir:
        return folder_config(run_dir)[2]
    if not args.store or not args.run:
        raise XLTuneError("say which run: --store PATH --run RUN_ID (`xltune runs --store PATH` lists the runs)"
                          + (" or --run-dir DIR" if hasattr(args, "run_dir") else ""))
    return stored_config(args.run, args.store)[1]


def load(args, float32: bool = False):
    """The model of the run named by --store/--run, or --run-dir."""
    from ..runs.stored import load_run, load_stored_run

    run_dir = getattr(args, "run_dir", None)
    if run_dir:
        return load_run(run_dir, device=device_of(args.device), float32=float32)
    return load_stored_run(args.run, args.store, device=device_of(args.device), float32=float32)


def main(args) -> int:
    from ..data.tasks import resolve_task
    from ..errors import XLTuneError
    from ..predict import check_output, predict_file, read_file
    from ..runs.folder import shown_path

    if args.batch_size < 1:
        raise XLTuneError(f"--batch-size must be >= 1, got {args.batch_size}")
    # everything that can be wrong with the run, the input or the output is found before the model loads
    spec = resolve_task(run_config(args).task)
    check_output(args.out, args.format)
    inputs, lang = read_file(args.input, spec, args.input_format, args.lang)
    run = load(args)
    summary = predict_file(run, args.input, args.out, input_format=args.input_format, output_format=args.format,
                           lang=lang, batch_size=args.batch_size, inputs=inputs)
    what = "tags per word" if run.spec.kind == "token" else "labels"
    lang = f"; language {summary.lang}" + ("" if args.lang else " (from the file name; --lang sets it)") \
        if summary.lang else ""
    print(f"wrote {summary.n} predictions ({what} and probabilities over {', '.join(run.labels)}) of run "
          f"{run.run_id} to {shown_path(summary.out)} ({summary.fmt}{lang})")
    if summary.score:
        shown = ", ".join(f"{k} {100 * v:.2f}%" for k, v in summary.score.items())
        print(f"the input has gold labels: {shown} (not stored; `xltune eval` stores scores linked to the run)")
    return 0
