"""The package's structure: no import cycle (counting the imports made
inside functions too, which only hide a cycle until the day both run)."""
import ast
import os

from conftest import ROOT

PACKAGE = ROOT / "umlpy"


def modules():
    found = {}
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[:-len(".__init__")]
                found[dotted] = path
    return found


def imported(module, path, known):
    """The package's modules that module imports, anywhere in its code."""
    is_package = path.endswith("__init__.py")
    out = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m in known and m != module}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    known = modules()
    graph = {m: imported(m, p, known) for m, p in known.items()}
    assert graph["umlpy.cli"], "the import graph came out empty"
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _is_number(node):
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return _is_number(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_number(node.left) and _is_number(node.right)
    return False


def numeric_constants(path):
    """Names given a number written out (NAME = 0x100, A, B = 1, 2) in a module."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and _is_number(node.value):
                found.add(target.id)
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                found.update(n.id for n, v in zip(target.elts, node.value.elts)
                             if isinstance(n, ast.Name) and _is_number(v))
    return {name for name in found if name.isupper()}


def test_no_constant_is_written_twice():
    """A number of Linux's ABI has one home, umlpy/abi; no two modules
    write out the same constant."""
    homes = {}
    for module, path in modules().items():
        for name in numeric_constants(path):
            homes.setdefault(name, []).append(module)
    assert "AT_FDCWD" in homes, "the scan found nothing"
    twice = {name: sorted(where) for name, where in homes.items() if len(where) > 1}
    assert twice == {}


def test_struct_layouts_live_in_abi():
    """Every struct umlpy reads or writes is an abi layout: no module
    outside umlpy/abi packs bytes by a format of its own."""
    outside = []
    for module, path in modules().items():
        if module.startswith("umlpy.abi"):
            continue
        for node in ast.walk(ast.parse(open(path).read(), path)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            if "struct" in names:
                outside.append(module)
    assert outside == []
