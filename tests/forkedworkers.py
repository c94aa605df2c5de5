"""Real ``jobq worker`` processes forked from a server that has imported jobq already.

A cold ``jobq worker`` spends about a CPU-second importing; a test that starts a hundred workers
forks them from a multiprocessing forkserver with those modules preloaded instead. Each child is
still a whole worker process running the ``jobq`` command's own entry point with its own
environment, signals and exit code.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from multiprocessing import forkserver
from multiprocessing.context import ForkServerContext
from pathlib import Path

HERE = Path(__file__).resolve().parent
# "__main__" (pytest's script) is imported once in the server rather than again in each child.
PRELOAD = ["__main__", "jobq.cli.main", "jobq.worker.main", "jobq.demo", "testtasks",
           "stresstasks"]


def _run_jobq(args: list[str], env: dict[str, str], log: str) -> None:
    """The child: output to ``log``, environment replaced, then the ``jobq`` entry point."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(Path(log).parent)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["jobq", *args]
    from jobq.cli.main import main

    main()


class ForkedProc:
    """One forked ``jobq`` process whose output goes to a file."""

    def __init__(self, context: ForkServerContext, args: list[str], env: dict[str, str],
                 log: Path) -> None:
        self.log = log
        self.process = context.Process(target=_run_jobq, args=(args, env, str(log)))
        self.process.start()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    def exitcode(self) -> int | None:
        return self.process.exitcode

    def kill9(self) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.join(10)


class Forker:
    """Starts forked ``jobq`` processes; ``close()`` kills any still running."""

    def __init__(self, tmp_path: Path) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)
        self._start_server()
        self.tmp_path = tmp_path
        self.started: list[ForkedProc] = []

    @staticmethod
    def _start_server() -> None:
        """Start the forkserver with the installed jobq and this folder importable: it runs as
        ``python -c``, which would otherwise put the cwd (the source tree) first on its path."""
        saved = {name: os.environ.get(name) for name in ("PYTHONSAFEPATH", "PYTHONPATH")}
        os.environ.update(PYTHONSAFEPATH="1", PYTHONPATH=str(HERE))
        try:
            forkserver.ensure_running()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def start(self, args: list[str], env: dict[str, str], name: str) -> ForkedProc:
        proc = ForkedProc(self.context, args, env, self.tmp_path / f"{name}.log")
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.kill9()
            proc.process.close()

