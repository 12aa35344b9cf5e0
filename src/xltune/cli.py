"""``xltune`` command line: a thin layer that parses arguments and calls the API.

Each subcommand lives in ``xltune.commands.<name>`` with ``add_parser(subparsers)`` and ``main(args) -> int``.
Errors the user can fix (XLTuneError) are printed as one line, without a traceback, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import XLTuneError

# module names under xltune.commands, in the order `xltune --help` lists them
COMMANDS = ["run", "sweep", "store", "demo", "claims", "report", "runs", "results", "predict", "eval", "export",
            "tokstats", "distill", "translate", "params", "tiny_model", "lang_module", "tasks"]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="xltune",
        description="Few-shot cross-lingual transfer: prompt tuning vs fine-tuning vs LoRA, per language.",
    )
    parser.add_argument("--version", action="version", version=f"xltune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("xltune.commands."):
                continue  # a command whose module is not installed in this build
            raise
        mod.add_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings about the user's inputs (e.g. repaired IOB tags) as one line, like errors."""
    print(f"xltune: warning: {message}", file=sys.stderr if file is None else file)


def entry() -> None:
    """The console script: user-facing warnings as one line each, then :func:`main`."""
    import warnings

    warnings.showwarning = _one_line_warning
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    ok = False
    try:
        code = int(args.func(args) or 0)
        ok = True
        return code
    except XLTuneError as e:
        print(f"xltune: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `xltune ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("xltune: interrupted", file=sys.stderr)
        return 130
    finally:
        _close_process_group(wait=ok)


def _close_process_group(wait: bool) -> None:
    """End a data-parallel command (--processes / torchrun) cleanly on every rank.

    Without this, a rank that finished early (rank 1 writes nothing) left Python while the main rank was still
    storing; tearing down interpreter state with the gloo process group alive destroyed its worker thread unjoined
    (`terminate called without an active exception`, exit -6), and the elastic launcher then failed the command
    (2 of 12 two-process runs under a CPU load of 2). So: every rank waits for the others, then the group is
    destroyed before exit.
    """
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    entry()
