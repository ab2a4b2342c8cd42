"""
C{python -m myproto}, and the C{myproto} command: the server in the
foreground, for people who do not use C{twistd}.

It takes exactly the options of C{twistd myproto} (L{myproto.tap.Options})
and builds the same service (L{myproto.tap.makeService}); it logs to
standard output, stops on Ctrl-C, and on SIGTERM drains its clients, saves
its snapshot if it has one and exits with status 0, as memcached does.
What it does not have are C{twistd}'s own options: daemonizing, pid files,
log files, choosing a reactor; C{-d} is refused with that reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence, TextIO

from twisted.internet.error import CannotListenError
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.python import usage

from myproto.tap import Options, makeService

PROGRAM = "python -m myproto"


def programName(argv0: str) -> str:
    """
    @return: how the process was started, for messages: C{python -m
        myproto}, or the console command's name (C{myproto}).
    """
    name = os.path.basename(argv0)
    if not name or name in ("__main__.py", "-m", "-c"):
        return PROGRAM
    return name


class MainOptions(Options):
    """
    The options of C{twistd myproto}, introduced as C{python -m myproto} (or
    the C{myproto} command).
    """

    def __init__(self, program: str = PROGRAM) -> None:
        super().__init__()
        self.program = program
        self.synopsis = "Usage: {} [options]".format(program)


def logTo(stream: TextIO) -> None:
    """
    Send the process's log events to C{stream}, as text lines.

    @param stream: where to write them.
    """
    globalLogBeginner.beginLoggingTo([textFileLogObserver(stream)])


def run(
    arguments: Sequence[str],
    reactor: Any = None,
    beginLogging: Callable[[TextIO], None] = logTo,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    program: str = PROGRAM,
) -> int:
    """
    Parse a command line, serve until the reactor stops, and say how the
    process should exit.

    @param arguments: the words after C{python -m myproto}.
    @param reactor: the reactor to run; the global one if L{None}.
    @param beginLogging: called with C{stdout} to start logging there.
    @param stdout: where the log goes; L{sys.stdout} if L{None}.
    @param stderr: where usage errors go; L{sys.stderr} if L{None}.
    @param program: how the process was started, for messages.

    @return: the exit status: 0 once stopped, 1 for a bad command line or
        an endpoint that cannot listen.
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    config = MainOptions(program)
    try:
        config.parseOptions(list(arguments))
    except usage.UsageError as error:
        print(config, file=stderr)
        print("{}: {}".format(program, error), file=stderr)
        return 1
    if reactor is None:
        from twisted.internet import reactor
    beginLogging(stdout)
    service = makeService(config, reactor)
    try:
        # Binds the listening ports, as twistd does before it runs.
        service.privilegedStartService()
    except CannotListenError as error:
        print("{}: {}".format(program, error), file=stderr)
        return 1
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


def main() -> None:
    """
    The entry point of C{python -m myproto} and of the C{myproto} command.

    A reader that goes away (C{--help | head}) ends the output quietly, not
    with a C{BrokenPipeError} traceback.
    """
    try:
        try:
            status = run(sys.argv[1:], program=programName(sys.argv[0]))
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes standard output again at exit: point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
