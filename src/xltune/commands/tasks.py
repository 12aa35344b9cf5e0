"""`xltune tasks` / `xltune methods` / `xltune config-keys`: what can be named in a config."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("tasks", help="list the declared tasks")
    p.set_defaults(func=main_tasks)
    p = sub.add_parser("methods", help="list the tuning methods")
    p.set_defaults(func=main_methods)
    p = sub.add_parser("objectives", help="list the training objectives")
    p.set_defaults(func=main_objectives)
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
    import dataclasses

    from ..methods.base import METHODS

    for name in METHODS:
        spec = METHODS.get(name)
        keys = [f.name for f in dataclasses.fields(spec.settings) if f.name != "name"]
        print(f"{name:<14}{spec.description}")
        print(f"{'':<14}backbone {'frozen' if spec.frozen_backbone else 'trains'}; runner {spec.runner}; keys: "
              f"{', '.join(keys) or '-'}")
    return 0


def main_objectives(args) -> int:
    import dataclasses

    from ..objectives.base import OBJECTIVES

    for name in OBJECTIVES:
        spec = OBJECTIVES.get(name)
        keys = [f.name for f in dataclasses.fields(spec.settings) if f.name != "name"]
        print(f"{name:<25}{spec.description} (tag {spec.tag}; keys: {', '.join(keys)})")
    return 0


def main_keys(args) -> int:
    from ..config import describe

    for key, default, help_ in describe():
        print(f"{key:<32}{default:<18}{help_}")
    return 0
