"""`xltune tasks` / `xltune methods` / `xltune config-keys`: what can be named in a config."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("tasks", help="list the declared tasks")
    p.set_defaults(func=main_tasks)
    p = sub.add_parser("methods", help="list the tuning methods")
    p.set_defaults(func=main_methods)
    p = sub.add_parser("config-keys", help="list every config key with its default and help")
    p.set_defaults(func=main_keys)


def main_tasks(args) -> int:
    from ..data.tasks import TASKS

    print(f"{'task':<16}{'kind':<10}{'metric':<10}{'labels':>7}{'langs':>7}  format")
    for name in TASKS:
        t = TASKS.get(name)
        print(f"{name:<16}{t.kind:<10}{t.metric:<10}{len(t.labels):>7}{len(t.languages):>7}  {t.format}")
    return 0


def main_methods(args) -> int:
    from ..methods.base import METHODS

    for name in METHODS:
        doc = (METHODS.get(name).__doc__ or "").strip().splitlines()
        print(f"{name:<14}{doc[0] if doc else ''}")
    return 0


def main_keys(args) -> int:
    from ..config import describe

    for key, default, help_ in describe():
        print(f"{key:<32}{default:<18}{help_}")
    return 0
