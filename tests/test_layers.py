"""The package's shape: no import cycles (module-level or inside functions), and the report reads only the store."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "xltune"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def import_graph(module_level_only: bool = False) -> dict[str, set[str]]:
    """module -> xltune modules it imports (anywhere in the file, or only at module level; annotations-only
    imports left out)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)
                for n in ast.walk(node)}
        nodes = tree.body if module_level_only else ast.walk(tree)
        for node in nodes:
            if id(node) in skip:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in modules else src for a in node.names]
            for t in targets:
                while t and t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_report_reads_only_the_store(tmp_path, monkeypatch):
    """The report and the analysis it draws on never build models or run training (ARCHITECTURE.md): importing it
    loads none of that, and a whole report (claims section included) is written with model building disabled."""
    graph = import_graph(module_level_only=True)
    reach, todo = set(), ["xltune.report"]
    while todo:
        m = todo.pop()
        for n in graph[m]:
            if n not in reach:
                reach.add(n)
                todo.append(n)
    forbidden = {m for m in reach if m.startswith(("xltune.models", "xltune.runs", "xltune.train", "xltune.methods."))}
    assert forbidden == set(), f"the report reaches {sorted(forbidden)}"

    import xltune.methods.base as methods
    import xltune.models.backbone as backbone
    from test_report import _fill  # noqa: E402  (a store of hand-made runs)
    from xltune.report import build_report

    def refuse(*_a, **_k):
        raise AssertionError("the report built a model")

    monkeypatch.setattr(backbone, "load_backbone", refuse)
    monkeypatch.setattr(methods, "build_model", refuse)
    _fill(tmp_path / "r.sqlite")
    paths = build_report(tmp_path / "r.sqlite", tmp_path / "out", n_resamples=20, progress=False)
    assert "## Claims" in paths["markdown"].read_text()


def test_one_place_records_a_run_and_one_loop_evaluates_languages():
    """Every runner's run is recorded by runs.pipeline.record and evaluated by runs.pipeline.evaluate_languages."""
    builders, loops = [], []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "RunRecord":
                builders.append(_module_name(path))
            calls = {getattr(n.func, "id", getattr(n.func, "attr", "")) for n in ast.walk(node)
                     if isinstance(n, ast.Call)} if isinstance(node, ast.For) else set()
            if {"score", "predict"} <= calls:
                loops.append(_module_name(path))  # a loop that predicts and scores language after language
    assert builders == ["xltune.runs.pipeline"]
    assert loops == ["xltune.runs.pipeline"]
