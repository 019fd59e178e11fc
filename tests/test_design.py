"""How the code fits together (issue 28): no import circles among the product's modules, no module that tests a
demo's name outside that demo's own declaration, one place for a page's widget keys and state, the library free of
Streamlit and ``settings`` and the navigation free of TensorFlow."""

import ast
import subprocess
import sys

from conftest import ROOT
from lossviz import demos

PRODUCT = [*sorted((ROOT / "lossviz").rglob("*.py")), *sorted((ROOT / "dashboard").glob("*.py")),
           ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]


def _module(path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imports(path, name: str, modules: frozenset = frozenset()) -> set[str]:
    """Every module this file imports, at its top or inside a function (``from package import submodule``: the
    submodule, where ``modules`` has it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            subs = {f"{base}.{a.name}" for a in node.names} & modules
            found |= subs
            if len(subs) < len(node.names):
                found.add(base)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "module" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.add(node.args[0].value)  # lazy.module("lossviz.models")
    return found


def _graph() -> dict[str, set[str]]:
    names = {_module(p): p for p in PRODUCT}
    modules = frozenset(names)
    return {name: {m for m in _imports(path, name, modules) if m in names and m != name}
            for name, path in names.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
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
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_among_the_products_modules():
    graph = _graph()
    assert len(graph) > 60 and graph["dashboard.page"]  # the walk found the modules and their imports
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # (the check finds one)


def test_no_module_tests_a_demos_name_outside_its_declaration():
    """``demo == "custom"``, ``demo != "sparse-penalty"``, ``{"max-mse": ...}.get(demo)``: each demo's own
    declaration says what it needs, and nothing else asks for it by name."""
    names = set(demos.BUILT_IN)
    own = {ROOT / "lossviz" / "demos" / f"{name.replace('-', '_')}.py" for name in names}
    found = []
    for path in PRODUCT:
        if path in own:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            compared = []
            if isinstance(node, ast.Compare):
                compared = [node.left, *node.comparators]
            elif isinstance(node, ast.Dict):
                compared = [k for k in node.keys if k is not None]
            if any(isinstance(c, ast.Constant) and c.value in names for c in compared):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_widget_keys_and_page_state_come_from_one_place():
    """The dashboard's sections make widget keys with ``state.key`` and keep their state in ``state.PageState``:
    no other module writes an f-string session key ``f"{demo}:..."``."""
    found = []
    for path in sorted((ROOT / "dashboard").glob("*.py")):
        if path.name == "state.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.FormattedValue) \
                    and getattr(node.values[0].value, "id", "") == "demo" and len(node.values) > 1 \
                    and isinstance(node.values[1], ast.Constant) and str(node.values[1].value).startswith(":"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_settings_and_the_navigation_import_no_tensorflow_and_the_library_no_streamlit():
    code = ("import sys; import lossviz.settings, lossviz.demos, dashboard.navigation; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    for path in sorted((ROOT / "lossviz").rglob("*.py")):
        assert not any(m.split(".")[0] == "streamlit" for m in _imports(path, _module(path))), path
