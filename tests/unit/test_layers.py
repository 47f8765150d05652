"""The package's layering, read from the source: a module imports only its own layer or lower ones.

Every module under ``asyncrpc/`` is parsed with :mod:`ast` (nothing is imported), and
every ``asyncrpc`` import it makes counts: at the top, inside a function (the lazy
imports that keep `asyncrpc status` quick), and under ``if TYPE_CHECKING:`` (a type
names what a module depends on as surely as a call does). The test fails on an
import that reaches up a layer, on a cycle between modules, and on a cycle between
packages (folders), naming the file, the line and the rule.

The checker runs once on made-up sources first, so a checker that finds nothing
fails rather than passes.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "asyncrpc"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / ROOT


@dataclass(frozen=True)
class Layer:
    """The packages (folders of ``asyncrpc/``) of one layer, and why it sits where it does."""

    packages: tuple[str, ...]
    why: str


#: The layers, lowest first. A module imports only modules of its own layer or of a lower one.
#: ``TOP`` stands for the modules directly in ``asyncrpc/`` (``__init__``, ``__main__``).
TOP = "(asyncrpc/)"
LAYERS: tuple[Layer, ...] = (
    Layer(
        ("protocol", "runtime"),
        "the vocabulary (tags, states, records, errors) and the process plumbing (config, "
        "numbers, serving, signals): no knowledge of the lesson, so everything can use them",
    ),
    Layer(
        ("lesson",),
        "the one table of flows and nodes and the durable functions: what the example "
        "teaches, said once, before any process runs it",
    ),
    Layer(
        ("network", "readers"),
        "how a process talks to the Resonate server (the SDK transports) and reads it back: "
        "used by every process that joins, never aware of which process it serves",
    ),
    Layer(
        ("server", "postgres", "node", "gateway"),
        "the processes of the running system, each complete on its own: the supervisor "
        "starts them, none of them knows it is supervised",
    ),
    Layer(
        ("supervise",),
        "the supervisor, its run directory and its control channel: it runs the processes "
        "below and knows nothing of the commands that drive it",
    ),
    Layer(
        ("ops",),
        "what a command does (up, down, call a flow), as plain functions over the supervisor: "
        "shared by the CLI, the demo and the dashboard",
    ),
    Layer(
        ("terminal",),
        "rendering for a terminal (status table, call graph tree): reads what ops and "
        "supervise return, decides nothing",
    ),
    Layer(
        ("dashboard", "demo"),
        "the two front ends built on ops and terminal (a browser page, a narrated crash); "
        "they sit side by side and below the CLI, which only launches them",
    ),
    Layer(
        ("cli",),
        "Typer only: parses options and calls the layers below; nothing below may depend on "
        "how a command is spelled",
    ),
    Layer(
        ("entrypoints",),
        "process entry points (the fork template, the detached supervisor): they compose the "
        "CLI and the dashboard into a process, so they sit above both",
    ),
    Layer(
        (TOP,),
        "the package itself and `python -m asyncrpc`: the way in, above everything",
    ),
)

RANK: dict[str, int] = {
    package: rank for rank, layer in enumerate(LAYERS) for package in layer.packages
}


@dataclass(frozen=True)
class Import:
    """One ``asyncrpc`` import: which module makes it, where, and the module it names.

    With the folder of ``asyncrpc/`` each of the two lives in (``TOP`` for the package's
    own modules): the layers and the package graph are between folders.
    """

    importer: str
    path: str
    line: int
    imported: str
    importer_package: str
    imported_package: str


@dataclass(frozen=True)
class Source:
    """One module's text, with the path a failure message names."""

    path: str
    text: str


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def tree_sources(root: Path = PACKAGE_DIR) -> dict[str, Source]:
    """Every module under ``root``, by dotted name."""
    return {
        module_name(path, root): Source(str(path.relative_to(root.parent)), path.read_text())
        for path in sorted(root.rglob("*.py"))
    }


def is_package(module: str, sources: Mapping[str, Source]) -> bool:
    return sources[module].path.endswith("__init__.py")


def imports_of(module: str, sources: Mapping[str, Source]) -> list[Import]:
    """Every ``asyncrpc`` import in ``module``, wherever in the file it stands."""
    source = sources[module]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source.text, filename=source.path)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # A relative import counts from the importing module's package.
                package = module if is_package(module, sources) else module.rpartition(".")[0]
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from asyncrpc.x import name` imports the module asyncrpc.x.name when there
            # is one, else the name from asyncrpc.x.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in sources else base
                for alias in node.names
            ]
        for name in dict.fromkeys(names):
            if name == ROOT or name.startswith(f"{ROOT}."):
                found.append(
                    Import(
                        module,
                        source.path,
                        node.lineno,
                        name,
                        package_of(module, sources),
                        package_of(name, sources),
                    )
                )
    return sorted(found, key=lambda found_import: (found_import.line, found_import.imported))


def import_graph(sources: Mapping[str, Source]) -> list[Import]:
    return [found for module in sorted(sources) for found in imports_of(module, sources)]


def package_of(module: str, sources: Mapping[str, Source]) -> str:
    """The folder of ``asyncrpc/`` a module lives in (``TOP`` for the package's own modules)."""
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and module in sources and is_package(module, sources)):
        return parts[1]
    return TOP


def layer_violations(imports: Iterable[Import]) -> list[str]:
    problems: list[str] = []
    for found in imports:
        mine, theirs = found.importer_package, found.imported_package
        if mine not in RANK or theirs not in RANK:
            unknown = mine if mine not in RANK else theirs
            problems.append(
                f"{found.path}:{found.line}: imports {found.imported}: the package {unknown!r} "
                "has no layer (add it to LAYERS in tests/unit/test_layers.py)"
            )
        elif RANK[theirs] > RANK[mine]:
            problems.append(
                f"{found.path}:{found.line}: imports {found.imported}: breaks the layering: "
                f"{theirs} sits above {mine}, and a module imports only its own layer or a "
                f"lower one ({mine}: {LAYERS[RANK[mine]].why})"
            )
    return problems


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle in the directed graph, as a path that ends where it starts; None when none."""
    done: set[str] = set()
    for start in sorted(edges):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        stack = [iter(sorted(edges.get(start, ())))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif step in on_path:
                return [*path[path.index(step) :], step]
            elif step not in done:
                path.append(step)
                on_path.add(step)
                stack.append(iter(sorted(edges.get(step, ()))))
    return None


def cycle_problems(imports: list[Import]) -> list[str]:
    """A cycle between modules, and one between packages (folders), each with its imports."""
    modules: dict[str, set[str]] = {}
    packages: dict[str, set[str]] = {}
    #: The first import that makes each edge, to name in the message.
    module_edges: dict[tuple[str, str], Import] = {}
    package_edges: dict[tuple[str, str], Import] = {}
    for found in imports:
        if found.imported != found.importer:
            modules.setdefault(found.importer, set()).add(found.imported)
            module_edges.setdefault((found.importer, found.imported), found)
        mine, theirs = found.importer_package, found.imported_package
        if mine != theirs:  # imports within one folder never close a cycle between folders
            packages.setdefault(mine, set()).add(theirs)
            package_edges.setdefault((mine, theirs), found)
    problems: list[str] = []
    for what, graph, edges in (
        ("modules", modules, module_edges),
        ("packages", packages, package_edges),
    ):
        cycle = find_cycle(graph)
        if cycle:
            steps = [edges[pair] for pair in itertools.pairwise(cycle)]
            problems.append(
                f"{what} import each other in a cycle: {' -> '.join(cycle)} ("
                + "; ".join(f"{step.path}:{step.line} imports {step.imported}" for step in steps)
                + ")"
            )
    return problems


def problems_in(sources: Mapping[str, Source]) -> list[str]:
    imports = import_graph(sources)
    return layer_violations(imports) + cycle_problems(imports)


def synthetic(modules: Mapping[str, str]) -> dict[str, Source]:
    """Made-up modules by dotted name; a name that other names extend is a package."""
    return {
        name: Source(
            name.replace(".", "/")
            + ("/__init__.py" if any(other.startswith(f"{name}.") for other in modules) else ".py"),
            text,
        )
        for name, text in modules.items()
    }


# The checker on made-up trees: each of these must be caught, or the real tree's pass means nothing.


def test_an_upward_import_is_caught_wherever_it_stands() -> None:
    sources = synthetic(
        {
            "asyncrpc.protocol.tags": "import asyncrpc.cli.application\n",
            "asyncrpc.runtime.config": "def f():\n    from asyncrpc.ops import up\n",
            "asyncrpc.lesson.topology": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from asyncrpc.supervise.plan import Plan\n"
            ),
            "asyncrpc.cli.application": "",
            "asyncrpc.ops.up": "",
            "asyncrpc.supervise.plan": "",
        }
    )
    problems = problems_in(sources)
    assert len(problems) == 3, problems
    assert problems[0].startswith("asyncrpc/lesson/topology.py:3: imports asyncrpc.supervise.plan")
    assert problems[1].startswith("asyncrpc/protocol/tags.py:1: imports asyncrpc.cli.application")
    assert problems[2].startswith("asyncrpc/runtime/config.py:2: imports asyncrpc.ops.up")
    assert all("breaks the layering" in problem for problem in problems)


def test_the_package_s_own_modules_are_the_top() -> None:
    sources = synthetic(
        {
            "asyncrpc": "",
            "asyncrpc.__main__": "from asyncrpc.cli import main\n",
            "asyncrpc.cli": "",
            "asyncrpc.cli.application": "import asyncrpc.__main__\n",
            "asyncrpc.entrypoints.template": "from asyncrpc import __version__\n",
        }
    )
    problems = layer_violations(import_graph(sources))
    assert [problem.split(": breaks")[0] for problem in problems] == [
        "asyncrpc/cli/application.py:1: imports asyncrpc.__main__",
        "asyncrpc/entrypoints/template.py:1: imports asyncrpc",
    ]
    assert f"{TOP} sits above cli" in problems[0]


def test_a_from_import_names_the_module_when_there_is_one() -> None:
    sources = synthetic(
        {
            "asyncrpc.ops.up": (
                "from asyncrpc.supervise import plan\n"
                "from asyncrpc.supervise.plan import Plan\n"
                "from . import down\n"
                "from ..runtime import config\n"
            ),
            "asyncrpc.ops.down": "",
            "asyncrpc.supervise": "",
            "asyncrpc.supervise.plan": "",
            "asyncrpc.runtime": "",
            "asyncrpc.runtime.config": "",
        }
    )
    assert [found.imported for found in import_graph(sources)] == [
        "asyncrpc.supervise.plan",
        "asyncrpc.supervise.plan",
        "asyncrpc.ops.down",
        "asyncrpc.runtime.config",
    ]
    assert problems_in(sources) == []


def test_a_module_cycle_is_caught_even_through_a_lazy_import() -> None:
    sources = synthetic(
        {
            "asyncrpc.runtime.a": "import asyncrpc.runtime.b\n",
            "asyncrpc.runtime.b": "def f():\n    from asyncrpc.runtime import c\n",
            "asyncrpc.runtime.c": "from asyncrpc.runtime.a import thing\n",
        }
    )
    assert problems_in(sources) == [
        "modules import each other in a cycle: asyncrpc.runtime.a -> asyncrpc.runtime.b -> "
        "asyncrpc.runtime.c -> asyncrpc.runtime.a "
        "(asyncrpc/runtime/a.py:1 imports asyncrpc.runtime.b; "
        "asyncrpc/runtime/b.py:2 imports asyncrpc.runtime.c; "
        "asyncrpc/runtime/c.py:1 imports asyncrpc.runtime.a)"
    ]


def test_a_package_cycle_is_caught_when_no_module_cycle_is() -> None:
    sources = synthetic(
        {
            "asyncrpc.runtime.a": "from asyncrpc.protocol.b import x\n",
            "asyncrpc.protocol.b": "",
            "asyncrpc.protocol.c": "from asyncrpc.runtime.d import y\n",
            "asyncrpc.runtime.d": "",
        }
    )
    assert problems_in(sources) == [
        "packages import each other in a cycle: protocol -> runtime -> protocol "
        "(asyncrpc/protocol/c.py:1 imports asyncrpc.runtime.d; "
        "asyncrpc/runtime/a.py:1 imports asyncrpc.protocol.b)"
    ]


def test_a_folder_without_a_layer_is_reported() -> None:
    sources = synthetic({"asyncrpc.newthing.x": "import asyncrpc.runtime.config\n"})
    sources |= synthetic({"asyncrpc.runtime.config": ""})
    assert problems_in(sources) == [
        "asyncrpc/newthing/x.py:1: imports asyncrpc.runtime.config: the package 'newthing' "
        "has no layer (add it to LAYERS in tests/unit/test_layers.py)"
    ]


# The real tree.


def test_the_real_tree_is_read() -> None:
    # A checker that read no file, or no import, would pass any tree.
    edges = {(found.importer, found.imported) for found in import_graph(tree_sources())}
    assert len(edges) > 200
    assert ("asyncrpc.__main__", "asyncrpc.entrypoints.command") in edges
    assert ("asyncrpc.entrypoints.command", "asyncrpc.cli") in edges  # in a function
    assert ("asyncrpc.ops.up", "asyncrpc.supervise.supervisor") in edges  # under TYPE_CHECKING
    assert ("asyncrpc.cli.up_commands", "asyncrpc.dashboard.serve") in edges  # in a function


def test_every_folder_has_a_layer() -> None:
    folders = {path.parent.name for path in PACKAGE_DIR.glob("*/__init__.py")}
    assert folders == set(RANK) - {TOP}


@pytest.mark.parametrize("check", [layer_violations, cycle_problems])
def test_the_package_keeps_its_layers(check: Callable[[list[Import]], list[str]]) -> None:
    problems = check(import_graph(tree_sources()))
    assert not problems, "\n".join(problems)
