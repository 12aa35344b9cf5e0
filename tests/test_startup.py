"""`xltune --help`, `--version` and `COMMAND --help` start without the heavy libraries: every command module imports
torch, transformers, numpy ... inside its ``main``, never at module level (2.6-5.4 s of start-up before; timings in
bench/bench_startup.py -- benchmarks are not tests: this checks the imports, not the clock)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "numpy", "scipy", "accelerate", "datasets", "peft", "matplotlib", "tokenizers",
         "pandas", "seqeval", "safetensors")

PROBE = """
import contextlib, io, json, sys
from xltune.cli import build_parser, main
parser = build_parser()
commands = sorted(parser._subparsers._group_actions[0].choices)
for argv in (["--version"], ["--help"], *[[c, "--help"] for c in commands]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
print(json.dumps({"commands": commands, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)}))
"""


def test_help_and_version_import_no_heavy_library():
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"run", "sweep", "demo", "report", "claims", "tiny-model", "params"} <= set(got["commands"])
    assert got["loaded"] == [], f"imported at start-up: {got['loaded'][:8]}"
