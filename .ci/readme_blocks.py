"""The README's tested command blocks, as bash, for .ci/run: README and CI cannot drift apart.

A block is tested when the line before its ```bash fence is a marker:

    <!-- ci: NAME -->                                  run the block as written
    <!-- ci: NAME | xltune demo += --seeds 1 ... -->   ... with these arguments added to every line that starts
                                                        with `xltune demo` (a documented small-scale override;
                                                        the README says so in its text)

    python3 .ci/readme_blocks.py list               the names of the tested blocks
    python3 .ci/readme_blocks.py show NAME          the block as bash (comments dropped, overrides applied)
    python3 .ci/readme_blocks.py show NAME --unpinned   ... without ` -c constraints.txt` (newest releases)

Only the standard library: it runs before any virtual environment exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"^<!--\s*ci:\s*(?P<name>[\w-]+)\s*(?:\|(?P<rules>.*?))?\s*-->\s*$")


def blocks(text: str) -> dict[str, list[str]]:
    """name -> the block's command lines (overrides applied)."""
    lines = text.splitlines()
    out: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        m = MARKER.match(line.strip())
        if not m:
            continue
        name = m["name"]
        if name in out:
            raise SystemExit(f"README.md:{i + 1}: a second block named {name!r}")
        j = i + 1
        if j >= len(lines) or not lines[j].strip().startswith("```bash"):
            raise SystemExit(f"README.md:{i + 1}: the marker {name!r} must stand on the line before a ```bash fence")
        body = []
        for k in range(j + 1, len(lines)):
            if lines[k].strip().startswith("```"):
                break
            body.append(lines[k])
        else:
            raise SystemExit(f"README.md:{j + 1}: the block {name!r} is never closed")
        out[name] = apply(rules(m["rules"] or "", i + 1), body)
    return out


def rules(text: str, line: int) -> list[tuple[str, str]]:
    """'xltune demo += ARGS; xltune run += ARGS' -> [(prefix, args)]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        prefix, sep, args = part.partition("+=")
        if not sep or not prefix.strip() or not args.strip():
            raise SystemExit(f"README.md:{line}: expected 'COMMAND += ARGS' in the ci marker, got {part!r}")
        out.append((prefix.strip(), args.strip()))
    return out


def apply(rule_list: list[tuple[str, str]], body: list[str]) -> list[str]:
    joined: list[str] = []
    for raw in body:  # one command per line: continuation lines joined (an override goes at the command's end)
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1].rstrip() + " " + raw.strip()
        else:
            joined.append(raw)
    out, used = [], set()
    for raw in joined:
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        for prefix, args in rule_list:
            if line.strip().startswith(prefix + " ") or line.strip() == prefix:
                line = f"{line} {args}"
                used.add(prefix)
        out.append(line)
    unused = [p for p, _ in rule_list if p not in used]
    if unused:
        raise SystemExit(f"README.md: the override for {unused[0]!r} matches no line of its block")
    return out


def main(argv: list[str]) -> int:
    found = blocks(README.read_text(encoding="utf-8"))
    if argv[:1] == ["list"]:
        print("\n".join(found))
        return 0
    if len(argv) >= 2 and argv[0] == "show":
        if argv[1] not in found:
            raise SystemExit(f"README.md has no tested block {argv[1]!r} (has: {', '.join(found) or 'none'})")
        lines = found[argv[1]]
        if "--unpinned" in argv[2:]:
            lines = [re.sub(r"\s-c constraints\.txt\b", "", ln) for ln in lines]
        print("\n".join(lines))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
