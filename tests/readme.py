"""
The README's runnable examples, for the tests that run them as written.

An example is the first fenced code block after a line
C{<!-- example: NAME -->}, which Markdown renders as nothing.
"""

from __future__ import annotations

import os
import re

from twisted.python.filepath import FilePath

ROOT = FilePath(__file__).parent().parent()

_FENCE = re.compile(r"```[a-z]*\n(.*?)\n```", re.DOTALL)


def readmeExample(name: str) -> str:
    """
    @param name: the name in the example's marker.

    @return: the example's code.

    @raise LookupError: if the README has no such example.
    """
    text = ROOT.child("README.md").getContent().decode("utf-8")
    marker = "<!-- example: {} -->".format(name)
    start = text.find(marker)
    if start < 0:
        raise LookupError("README.md has no example named {!r}".format(name))
    match = _FENCE.search(text, start)
    if match is None:
        raise LookupError("README.md's example {!r} has no code block".format(name))
    return match.group(1) + "\n"


def childEnvironment() -> dict[str, str]:
    """
    @return: the environment for a Python child process that imports this
        checkout's C{myproto}, whether or not it is installed.
    """
    environment = dict(os.environ)
    path = [ROOT.path]
    if environment.get("PYTHONPATH"):
        path.append(environment["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(path)
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    return environment
