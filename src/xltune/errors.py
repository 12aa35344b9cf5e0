"""One exception type for every user-facing error.

Anything the user can fix (a config key, a data file, a model path) raises :class:`XLTuneError` with a one-line
message that names *what* and *where* (file and line when there is one) and, where possible, the fix. The CLI prints
it without a traceback and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class XLTuneError(Exception):
    """A user-facing error: bad config, bad data, missing file, unknown name."""

    exit_code = 2


def where(path, line: int | None = None) -> str:
    """``path:line`` as editors and compilers print it."""
    return f"{path}:{line}" if line is not None else str(path)


def yaml_error(e: Exception, source) -> XLTuneError:
    """A PyYAML error as ``file:line: not valid YAML (...)``. PyYAML notices an unclosed '[' or '{' only at a later
    line, so the line where the construct began is named too."""
    mark = getattr(e, "problem_mark", None)
    ctx, ctx_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
    began = f"{ctx} started at line {ctx_mark.line + 1}: " if ctx and ctx_mark is not None and (
        mark is None or ctx_mark.line != mark.line) else ""
    return XLTuneError(f"{where(source, mark.line + 1 if mark is not None else None)}: not valid YAML "
                       f"({began}{getattr(e, 'problem', e)})")


def closest_first(name: str, valid: Iterable[str]) -> list[str]:
    """Valid names with the closest matches to ``name`` first (then the rest, sorted)."""
    valid = sorted(set(valid))
    close = difflib.get_close_matches(name, valid, n=len(valid), cutoff=0.0)
    ranked = [v for v in close if difflib.SequenceMatcher(None, name, v).ratio() >= 0.5]
    return ranked + [v for v in valid if v not in ranked]


def unknown_name(kind: str, name: str, valid: Iterable[str], context: str = "") -> XLTuneError:
    """``unknown task 'xnil' (valid: xnli, pawsx, ...)`` with the closest valid names first."""
    names = closest_first(str(name), valid)
    ctx = f" in {context}" if context else ""
    return XLTuneError(f"unknown {kind} {name!r}{ctx}; valid: {', '.join(names)}")


_NOTED: set[str] = set()
_QUIET = [0]


def note(message: str) -> None:
    """A one-line note on stderr (a deprecated key, a setting that does not apply), once per message per process."""
    import sys

    if _QUIET[0] or message in _NOTED:
        return
    _NOTED.add(message)
    print(f"note: {message}", file=sys.stderr)


class quiet_notes:
    """``with quiet_notes():`` no notes (e.g. while reading configs stored by an older version)."""

    def __enter__(self) -> None:
        _QUIET[0] += 1

    def __exit__(self, *exc) -> None:
        _QUIET[0] -= 1
