"""A real PostgreSQL for the Django and outbox tests: Debian's server (``postgresql`` 15,
installed by hack/test.sh), one throw-away cluster per pytest process on a free loopback port,
started once per session and stopped after it. The server refuses to run as root, so as root
the cluster belongs to the ``postgres`` user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures import _missing

from jobq.embedded import die_with, free_port

START_TIMEOUT_S = 30.0
FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


def pg_binary(name: str) -> str:
    """Debian keeps the server's binaries out of PATH, under /usr/lib/postgresql/<v>/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        _missing(f"PostgreSQL's {name} missing (apt-get install postgresql; hack/test.sh does)")
    return found[-1]


class PostgresServer:
    """One cluster in a temporary directory, trust auth on 127.0.0.1, superuser ``postgres``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobq-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.user = "postgres" if os.geteuid() == 0 else None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        subprocess.run([pg_binary("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--no-sync"], user=self.user, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(5):
            self.port = free_port()
            with (self.root / "server.log").open("ab") as log:
                self.process = subprocess.Popen(
                    [pg_binary("postgres"), "-D", str(self.data), "-p", str(self.port),
                     "-c", "listen_addresses=127.0.0.1",
                     "-c", f"unix_socket_directories={self.root}",
                     "-c", "max_connections=200", *FAST],
                    user=self.user, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=die_with(os.getpid()),
                )
            if self._ready():
                return self
        raise RuntimeError(f"PostgreSQL did not start; see {self.root / 'server.log'}")

    def _ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False  # (most likely) the port was taken meanwhile: try another
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                import psycopg

                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return True
            except OSError:
                pass
            except Exception as exc:  # starting up: "the database system is starting up"
                if "starting up" not in str(exc):
                    raise
            time.sleep(0.05)
        return False

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends open sessions
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """This pytest process's PostgreSQL, started on first use."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def django_project(postgres: PostgresServer) -> Iterator[PostgresServer]:
    """Django set up once per process on tests/django_project, its two databases migrated."""
    postgres.create_database("shop")
    postgres.create_database("other")
    os.environ["JOBQ_TEST_PG_PORT"] = str(postgres.port)
    os.environ["DJANGO_SETTINGS_MODULE"] = "django_project.settings"
    import django
    from django.core.management import call_command

    django.setup()
    for alias in ("default", "other"):
        call_command("migrate", database=alias, run_syncdb=True, verbosity=0)
    yield postgres
    from django.db import connections

    connections.close_all()
