"""`xltune params`: total and trainable parameters of a method on a model, from its config only (meta device)."""

from __future__ import annotations

import argparse

from ..models.known import KNOWN_CONFIGS


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("params", help="count total / trainable parameters of a method (no weights needed)",
                              description=__doc__)
    p.add_argument("--model-config", required=True,
                   help=f"a short name ({', '.join(KNOWN_CONFIGS)}), a local model directory or a hub id")
    p.add_argument("--method", default="deep_prompt", help="a method name (see `xltune methods`)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="method.KEY=VALUE",
                   help="method option, e.g. method.prefix_length=15 (repeatable)")
    p.add_argument("--task-kind", default="sequence", choices=("sequence", "token"))
    p.add_argument("--num-labels", type=int, default=3)
    p.set_defaults(func=main)
    return p


def method_config(method: str, overrides: list[str]):
    from ..config import apply_override
    from ..errors import XLTuneError
    from ..methods.base import build_method_settings

    data: dict = {"method": {"name": method}}
    for item in overrides:
        if not item.split("=", 1)[0].strip().startswith("method."):
            raise XLTuneError(f"--set {item}: xltune params only takes method.* options")
        apply_override(data, item)
    return build_method_settings(data["method"], "--set", "method")


def main(args: argparse.Namespace) -> int:
    from ..models.tiny import parameter_report

    report = parameter_report(args.model_config, method_config(args.method, args.overrides),
                              task_kind=args.task_kind, num_labels=args.num_labels)
    print(f"model      {report['model']}")
    print(f"method     {report['method']}")
    print(f"total      {report['total']:,}")
    print(f"trainable  {report['trainable']:,}")
    print(f"trainable% {report['percent']:.4f}")
    return 0
