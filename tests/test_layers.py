"""
The package's shape: imports run one way, down the layers of
C{DESIGN.md}; the protocol core and everything below it import nothing from
Twisted; and no module or class outgrows what a reader can hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import myproto

PACKAGE = Path(myproto.__file__).parent

# Every module, lowest layer first.  A module may import only modules listed
# before it (type-only imports included); the packages' __init__ modules are
# docstrings (and __version__), which anything may import.
ORDER = [
    # Leaves.  auth is one: the authentication command checks credentials.
    "myproto.errors",
    "myproto.config",
    "myproto.stats",
    "myproto.auth",
    "myproto.item",
    "myproto.lru",
    "myproto.store",
    "myproto.secondflush",
    # Bytes to requests, results to bytes.
    "myproto.wire.numbers",
    "myproto.wire.classic",
    "myproto.wire.meta",
    "myproto.wire.tuning",
    "myproto.wire.text",
    "myproto.wire.binary",
    "myproto.wire.replies",
    "myproto.cache",
    # What each command means.
    "myproto.commands.storage",
    "myproto.commands.retrieval",
    "myproto.commands.arithmetic",
    "myproto.commands.items",
    "myproto.commands.watch",
    "myproto.commands.crawler",
    "myproto.commands.tuning",
    "myproto.commands.stats",
    "myproto.commands.admin",
    "myproto.commands.dispatch",
    "myproto.commands.binary",
    "myproto.commands.sasl",
    # The sans-IO connection, then its Twisted adapter.
    "myproto.connection",
    "myproto.conns",
    "myproto._tuning",
    "myproto.producers",
    "myproto.protocol",
    "myproto.udp",
    "myproto.evictions",
    "myproto.snapshot",
    "myproto.certificates",
    "myproto.tls",
    "myproto.metrics",
    "myproto.browse",
    "myproto.figures",
    "myproto.dashboard",
    "myproto.endpoints",
    "myproto.optionvalues",
    "myproto.options",
    "myproto.service",
    # Entry points.
    "myproto.tap",
    "myproto.poolmetrics",
    "myproto.pool",
    "myproto.local",
    "myproto.embedded",
    "myproto.testing",
    "myproto.__main__",
]

PACKAGES = {"myproto", "myproto.wire", "myproto.commands"}

# The layers that must run without Twisted: the store, the grammar, the
# commands and the connection core.
NO_TWISTED = ORDER[: ORDER.index("myproto.connection") + 1]

MAX_MODULE_LINES = 700
MAX_CLASS_LINES = 350


def moduleName(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    """
    @return: every module of the package, parsed, by name.
    """
    return {
        moduleName(path): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def imports(tree: ast.Module) -> set[str]:
    """
    @return: every module a module imports, anywhere in it (inside
        functions and C{if TYPE_CHECKING:} blocks too).
    """
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(node.module + "." + alias.name for alias in node.names)
    return found


def upwardImports(trees: dict[str, ast.Module]) -> list[str]:
    """
    @return: a line for each import that points up the layers, or at a
        module the order does not name.
    """
    rank = {name: index for index, name in enumerate(ORDER)}
    problems = []
    for name, tree in trees.items():
        if name in PACKAGES:
            continue
        for target in sorted(imports(tree)):
            if not (target == "myproto" or target.startswith("myproto.")):
                continue
            parent = target.rsplit(".", 1)[0]
            if target in PACKAGES or target not in rank and (parent in rank or parent in PACKAGES):
                # A package, or a name imported from a module.
                continue
            if target not in rank:
                problems.append("{} imports {}, which has no layer".format(name, target))
            elif rank[target] >= rank[name]:
                problems.append("{} imports {}, which is not below it".format(name, target))
    return problems


class LayerTests(SynchronousTestCase):
    """
    Imports run one way, and the core is free of Twisted.
    """

    def test_everyModuleHasALayer(self) -> None:
        """
        Each module of the package is in L{ORDER}, and each name there is a
        module.
        """
        found = set(modules()) - PACKAGES
        self.assertEqual(sorted(found - set(ORDER)), [])
        self.assertEqual(sorted(set(ORDER) - found), [])

    def test_importsRunDown(self) -> None:
        """
        No module imports one from its own layer or above.
        """
        self.assertEqual(upwardImports(modules()), [])

    def test_upwardImportIsFound(self) -> None:
        """
        The check sees an upward import, even a type-only one inside an
        C{if TYPE_CHECKING:} block.
        """
        tree = ast.parse(
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from myproto.protocol import CacheServerFactory\n"
        )
        self.assertEqual(
            upwardImports({"myproto.store": tree}),
            ["myproto.store imports myproto.protocol, which is not below it"],
        )

    def test_coreWithoutTwisted(self) -> None:
        """
        The store, the grammar, the commands and the connection core import
        nothing from Twisted or zope.interface.
        """
        trees = modules()
        problems = [
            "{} imports {}".format(name, target)
            for name in NO_TWISTED
            for target in sorted(imports(trees[name]))
            if target.split(".")[0] in ("twisted", "zope")
        ]
        self.assertEqual(problems, [])

    def test_packagesAreDocstrings(self) -> None:
        """
        The packages' C{__init__} modules hold a docstring (and the
        package's C{__version__}), no code.
        """
        for name in PACKAGES:
            body = modules()[name].body
            statements = [node for node in body[1:] if not isinstance(node, ast.Assign)]
            self.assertIsInstance(body[0], ast.Expr, name)
            self.assertEqual(statements, [], name)


class SizeTests(SynchronousTestCase):
    """
    Modules and classes stay small enough to read.
    """

    def test_modules(self) -> None:
        """
        No module is over L{MAX_MODULE_LINES} lines.
        """
        long = {
            moduleName(path): lines
            for path in PACKAGE.rglob("*.py")
            for lines in [len(path.read_text().splitlines())]
            if lines > MAX_MODULE_LINES
        }
        self.assertEqual(long, {})

    def test_classes(self) -> None:
        """
        No class is over L{MAX_CLASS_LINES} lines.
        """
        long = {
            "{}.{}".format(name, node.name): node.end_lineno - node.lineno + 1  # type: ignore[operator]
            for name, tree in modules().items()
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES  # type: ignore[operator]
        }
        self.assertEqual(long, {})
