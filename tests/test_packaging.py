"""
The package as users get it: built and installed from this source tree, it
ships every module under C{myproto/} (subpackages included) and the twistd
plugins, and they import from the installed copy.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from tests.readme import ROOT

# Seconds for pip to build and install (it takes a few).
INSTALL_LIMIT = 120

# What is not part of a source checkout's build input.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "_trial_temp*",
    "dropin.cache",
)

# Imports each module named in argv[1] (a JSON list) and runs each plugin
# file in argv[2] (Twisted's own twisted.plugins, found first on sys.path,
# would import another copy), then prints a JSON map from module name to
# its __file__.
_IMPORT_ALL = """
import importlib, json, runpy, sys
names = json.loads(sys.argv[1])
for path in json.loads(sys.argv[2]):
    runpy.run_path(path)
print(json.dumps({name: importlib.import_module(name).__file__ for name in names}))
"""


def sourceModules(root: FilePath[str], package: str) -> list[str]:
    """
    @return: the dotted names of every C{.py} module under C{root/package},
        recursively, packages by their own name.
    """
    names = []
    base = root.child(package)
    for path in base.walk():
        if path.isfile() and path.basename().endswith(".py") and "__pycache__" not in path.path:
            parts = path.segmentsFrom(root)
            parts[-1] = parts[-1][: -len(".py")]
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return sorted(names)


class InstalledPackageTests(SynchronousTestCase):
    """
    C{pip install .} of a copy of this tree, into a directory of its own.
    """

    def setUp(self) -> None:
        workspace = FilePath(self.mktemp())
        workspace.makedirs()
        source = workspace.child("source")
        shutil.copytree(ROOT.path, source.path, ignore=_NOT_SOURCE)
        self.target = workspace.child("installed")
        self.outside = workspace.child("elsewhere")
        self.outside.makedirs()
        # pip from this interpreter: in CI the venv .ci/run made, where the
        # test extra has put wheel beside setuptools, so the build needs no
        # index.  Without wheel (setuptools < 70.1 cannot build a wheel on
        # its own), pip fetches the build requirements itself.
        isolation = [] if importlib.util.find_spec("wheel") is None else ["--no-build-isolation"]
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation,
             "--no-compile", "--target", self.target.path, source.path],
            cwd=self.outside.path,
            capture_output=True,
            text=True,
            timeout=INSTALL_LIMIT,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_everyModuleShippedAndImportable(self) -> None:
        """
        Every module in the source tree's C{myproto/} and C{twisted/plugins/}
        is installed; myproto's import from the installed copy, not the
        source, and the installed plugin files run.
        """
        names = sourceModules(ROOT, "myproto")
        self.assertIn("myproto.store", names)
        plugins = sorted(
            "twisted.plugins." + path.basename()[: -len(".py")]
            for path in ROOT.descendant(["twisted", "plugins"]).children()
            if path.basename().endswith(".py")
        )
        self.assertIn("twisted.plugins.myproto_plugin", plugins)
        for name in names + plugins:
            path = self.target.descendant(name.split("."))
            self.assertTrue(
                path.siblingExtension(".py").exists() or path.child("__init__.py").exists(),
                "{} is not installed".format(name),
            )
        environment = dict(os.environ)
        environment["PYTHONPATH"] = self.target.path
        result = subprocess.run(
            # -I would also drop PYTHONPATH: -s and -E are not used, and the
            # working directory is outside the source tree.
            [
                sys.executable,
                "-c",
                _IMPORT_ALL,
                json.dumps(names),
                json.dumps(
                    [self.target.descendant(name.split(".")).path + ".py" for name in plugins]
                ),
            ],
            cwd=self.outside.path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=INSTALL_LIMIT,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        files = json.loads(result.stdout)
        for name in names:
            self.assertTrue(
                FilePath(files[name]).path.startswith(self.target.path + os.sep),
                "{} imported from {}, not the installed copy".format(name, files[name]),
            )

    def test_dashboardPageShipped(self) -> None:
        """
        The dashboard's page, a data file of the package, is installed
        beside the modules, as the source has it.
        """
        page = self.target.descendant(["myproto", "dashboard.html"])
        self.assertTrue(page.exists(), "myproto/dashboard.html is not installed")
        self.assertEqual(page.getContent(), ROOT.descendant(["myproto", "dashboard.html"]).getContent())

    def test_pluginsDirectoryStaysANamespace(self) -> None:
        """
        Neither C{twisted/__init__.py} nor C{twisted/plugins/__init__.py} is
        shipped: either would shadow Twisted's own when installed beside it.
        """
        self.assertTrue(self.target.descendant(["twisted", "plugins", "myproto_plugin.py"]).exists())
        self.assertFalse(self.target.descendant(["twisted", "__init__.py"]).exists())
        self.assertFalse(self.target.descendant(["twisted", "plugins", "__init__.py"]).exists())

    def test_metadata(self) -> None:
        """
        The installed metadata names the license (MIT, with the C{LICENSE}
        file shipped in the dist-info), the authors, the classifiers, and
        the Python versions allowed; any home page or project URL is a real
        https address, never a placeholder (there is none until the project
        has a public address).
        """
        [distribution] = [
            found
            for found in importlib.metadata.distributions(path=[self.target.path])
            if found.metadata["Name"] == "myproto"
        ]
        metadata = distribution.metadata
        # setuptools 77 and later may write License-Expression instead.
        license = "License-Expression" if "License-Expression" in metadata else "License"
        self.assertEqual(metadata[license], "MIT")
        self.assertEqual(metadata["Author"], "The myproto developers")
        self.assertEqual(metadata["Requires-Python"], ">=3.9")
        classifiers = metadata.get_all("Classifier") or []
        for classifier in [
            "License :: OSI Approved :: MIT License",
            "Framework :: Twisted",
            "Topic :: Database",
            "Programming Language :: Python :: Implementation :: CPython",
        ]:
            self.assertIn(classifier, classifiers)
        shipped = [
            path
            for path in distribution.files or []
            if path.name == "LICENSE" and ".dist-info" in str(path)
        ]
        self.assertEqual(len(shipped), 1, distribution.files)
        self.assertEqual(
            shipped[0].read_text(encoding="utf-8"),
            ROOT.child("LICENSE").getContent().decode("utf-8"),
        )
        urls = [url.split(",")[-1].strip() for url in metadata.get_all("Project-URL") or []]
        if "Home-page" in metadata and metadata["Home-page"] != "UNKNOWN":
            urls.append(metadata["Home-page"])
        for url in urls:
            self.assertTrue(url.startswith("https://"), url)
            self.assertNotIn("example", url)
