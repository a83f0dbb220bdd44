"""The layout's rules, read from the source (docs/ARCHITECTURE.md, "Rooms"): no import cycle, every room
imports only the rooms below it, `routing/` stays pure, imports inside functions say why, no product
module is named like a test, and `bridge/` keeps a short top level.

Every import counts, at module level or inside a function: a cycle closed by a late import is still a
cycle. An edge goes to the module named (`from bridge.inbound import pipeline` is an edge to
`bridge.inbound.pipeline`), not to the packages above it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bridge", "routing", "models")

# Rooms, by module prefix (the longest prefix decides), and the rooms each may import besides itself.
ROOMS = {
    "models": "models",
    "routing": "routing",
    "bridge": "base",  # bridge/*.py: errors, crypto, portal settings, input checks, candidates, JSON views
    "bridge.config": "base",  # the settings and log lines, read by every room from the first import on
    "bridge.net": "net",
    # recording a condition or an event is writing a row in the caller's transaction, like a log line:
    # every room may do it, so these sit low although ops/ reports and delivers them
    "bridge.ops.error_reports.rules": "records",
    "bridge.ops.error_reports.records": "records",
    "bridge.ops.webhooks.outbox": "records",
    "bridge.accounts": "accounts",
    "bridge.outbound": "outbound",
    "bridge.inbound": "inbound",
    "bridge.checks": "checks",
    "bridge.privacy": "privacy",
    "bridge.ops": "ops",
    "bridge.web": "web",
    "bridge.ops.serve": "entry",  # starts everything, the web server included
    "bridge.ops.services_process": "entry",  # (the web server's process)
    "bridge.ops.web_server": "entry",
    "bridge.cli": "entry",
}
_BELOW = ["models", "routing", "base", "net", "records", "accounts", "outbound", "inbound", "checks", "privacy", "ops",
          "web", "entry"]
MAY_IMPORT = {
    "models": set(),
    "routing": set(),
    **{room: set(_BELOW[:i]) - {"routing"} | {"models", "routing"}
       for i, room in enumerate(_BELOW) if room not in ("models", "routing")},
}
MAX_TOP_LEVEL_MODULES = 12


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    nested: bool  # inside a function
    why: bool  # a comment on the line or the line above


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> list[Import]:
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    nested_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                    for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        line = node.lineno
        why = "#" in lines[line - 1] or (line > 1 and lines[line - 2].strip().startswith("#"))
        found += [Import(name, target, line, id(node) in nested_nodes, why) for target in targets]
    return found


def _every_import() -> list[Import]:
    modules = _modules()
    return [imp for name, path in modules.items() for imp in _imports(name, path, set(modules))]


def _all_imports() -> list[Import]:
    """The imports of the project's own modules."""
    return [imp for imp in _every_import() if imp.target.split(".")[0] in PACKAGES]


def _room(module: str) -> str:
    best = max((p for p in ROOMS if module == p or module.startswith(p + ".")), key=len)
    if best == "bridge" and module.count(".") > 1:
        raise AssertionError(f"{module} is in no room: add its folder to ROOMS and docs/ARCHITECTURE.md")
    return ROOMS[best]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    edges: dict[str, set[str]] = {}
    for imp in _all_imports():
        edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rooms_import_only_the_rooms_below() -> None:
    wrong = [f"{i.source}:{i.line} ({_room(i.source)}) imports {i.target} ({_room(i.target)})"
             for i in _all_imports()
             if _room(i.source) != _room(i.target) and _room(i.target) not in MAY_IMPORT[_room(i.source)]]
    assert wrong == []


def test_routing_is_pure() -> None:
    assert [f"{i.source}:{i.line} imports {i.target}" for i in _all_imports()
            if i.source.startswith("routing") and not i.target.startswith("routing")] == []


def test_imports_inside_functions_say_why() -> None:
    silent = [f"{i.source}:{i.line} imports {i.target}" for i in _every_import() if i.nested and not i.why]
    assert silent == []


def test_no_product_module_is_named_like_a_test() -> None:
    named = [str(p.relative_to(ROOT)) for p in _modules().values()
             if p.name.startswith("test_") or p.stem.endswith("_test") or p.name == "conftest.py"]
    assert named == []


def test_tests_mirror_the_code() -> None:
    """Every test folder but the shared ones is named after a folder of the code."""
    shared = {"helpers", "servers", "benchmarks"}
    code = {p.relative_to(ROOT / "bridge") for p in (ROOT / "bridge").rglob("*") if p.is_dir()}
    code |= {Path("routing") / p.relative_to(ROOT / "routing") for p in (ROOT / "routing").rglob("*") if p.is_dir()}
    code |= {Path("routing")}
    tests = {p.relative_to(ROOT / "tests") for p in (ROOT / "tests").rglob("*")
             if p.is_dir() and p.name != "__pycache__" and not shared & set(p.relative_to(ROOT / "tests").parts)}
    assert sorted(str(t) for t in tests - code) == []


def test_code_cites_only_files_in_the_repository() -> None:
    """The design the code cites is docs/ARCHITECTURE.md, in the repository."""
    citing = [str(p.relative_to(ROOT)) for p in _modules().values() if "DESIGN.md" in p.read_text()]
    assert citing == [] and (ROOT / "docs" / "ARCHITECTURE.md").is_file()


def test_bridge_keeps_a_short_top_level() -> None:
    top = sorted(p.name for p in (ROOT / "bridge").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
