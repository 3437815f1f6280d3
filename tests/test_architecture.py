"""The layers of dln_kernels (docs/architecture.md): a module imports only from its own layer or
lower ones, the three computations (sim, dmft, static) do not import each other, and there are no
import cycles. Read from the source (ast), so lazy imports inside functions count too."""

import ast
import pathlib

import dln_kernels

PKG = pathlib.Path(dln_kernels.__file__).parent
# layer of each top-level part of the package; equal numbers are siblings
LAYER = {"registry": 0, "backend": 0, "model": 1, "sim": 2, "dmft": 2, "static": 2, "measure": 3, "pipeline": 4}
SIBLINGS_APART = {"sim", "dmft", "static"}


def part_of(module: str) -> str:
    """'dln_kernels.model.priors' -> 'model'; 'dln_kernels.registry' -> 'registry'."""
    return module.split(".")[1]


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, path


def imports_of(name: str, path: pathlib.Path) -> set:
    """Names of the dln_kernels modules (or packages) that ``path`` imports."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dln_kernels.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("dln_kernels"):
                continue
            if mod == "dln_kernels" or mod.count(".") == 1 and (PKG / mod.split(".")[1]).is_dir():
                # `from dln_kernels[.pkg] import x`: x may be a module
                out |= {f"{mod}.{a.name}" for a in node.names if (PKG.parent / f"{mod}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
                if mod == "dln_kernels":
                    continue
            out.add(mod)
    return out


def test_every_module_belongs_to_a_layer():
    for name, _ in modules():
        if name != "dln_kernels":
            assert part_of(name) in LAYER, f"{name}: add its part to LAYER and to docs/architecture.md"


def test_imports_go_down_the_layers():
    bad = []
    for name, path in modules():
        if name == "dln_kernels":
            continue
        me = part_of(name)
        for dep in imports_of(name, path):
            if dep == "dln_kernels":
                continue
            other = part_of(dep)
            if LAYER[other] > LAYER[me] or (other != me and other in SIBLINGS_APART and me in SIBLINGS_APART):
                bad.append(f"{name} imports {dep}")
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph = {name: {d for d in imports_of(name, path) if d != "dln_kernels"} for name, path in modules()}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_checker_sees_a_violation(tmp_path):
    """The rule is not vacuous: an upward import is reported."""
    f = tmp_path / "m.py"
    f.write_text("from dln_kernels.pipeline.io import open_h5\nfrom ..measure import analysis\n")
    deps = imports_of("dln_kernels.model.m", f)
    assert "dln_kernels.pipeline.io" in deps and "dln_kernels.measure.analysis" in deps
