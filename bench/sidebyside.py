"""jobq next to BullMQ's Node worker on a realistic job, in one run, on the same Redis.

    .venv/bin/python bench/sidebyside.py                       # the full matrix (long)
    .venv/bin/python bench/sidebyside.py --quick               # 10,000 jobs, one trial, Valkey
    .venv/bin/python bench/sidebyside.py --baseline HEAD~1     # adds jobq at another commit

Every job body makes one INCR over its own client (redis.asyncio in Python, ioredis in Node);
both systems run at their default settings, jobq with its JSON lifecycle logs on (info) written
to a file. For each server (Debian's redis-server 7 and the embedded Valkey), job count,
concurrency and worker-process count, the jobs are enqueued first, then the workers drain them;
trials are interleaved (the order of the systems alternates) and the medians printed with their
ratio. Also: worker CPU per job (start-up included), Redis CPU per job (INFO used_cpu_* deltas),
enqueue one call at a time (Client.enqueue vs Queue.add, each in a process of its own), and
start-up (spawn -> first job done; jobq's in a venv holding what the image installs, see
image_python), and the engine alone: a no-op body for both (jobq's logs
off), one process, at --noop-concurrency. Completions are counted the same way for both: the size of
the queue's completed set. Prints figures; asserts nothing. The machine is shared: compare
ratios from one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis import Redis as SyncRedis

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BULL = BENCH / "bullmq"
POLL_S = 0.005  # completion polling interval (both systems pay the same Redis calls)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the systems ------------------------------------------------------------------------------

@dataclass
class System:
    """One contender: how to fill a queue, start a worker, produce, and count completions."""

    label: str
    pythonpath: str = ""  # jobq only: where its code comes from (empty = this worktree)
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. tracing on (--traced)

    @property
    def is_bull(self) -> bool:
        return self.label == "bullmq"

    def env(self, url: str, ns: str, jobs: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBQ_", "REDIS_URL"))}
        env.update(REDIS_URL=url, BENCH_COUNTER_KEY=f"{ns}:counter",
                   BENCH_WAITS_KEY=waits_key(ns))
        if not self.is_bull:
            env.update(JOBQ_KEY_PREFIX=ns, JOBQ_TASKS="benchtasks",
                       JOBQ_COMPLETED_KEEP=str(max(jobs, 1000)),  # keep all: they are counted
                       PYTHONPATH=os.pathsep.join(p for p in (self.pythonpath, str(BENCH)) if p))
        env.update(self.extra_env)
        return env

    def completed_key(self, ns: str) -> str:
        return f"bull:{ns}:completed" if self.is_bull else f"{ns}:{{incr-queue}}:completed"

    def worker(self, url: str, ns: str, jobs: int, concurrency: int, log: Path,
               task: str = "incr", python: str = sys.executable) -> subprocess.Popen[bytes]:
        if self.is_bull:
            body = {"noop": "-", "stamp": f"waits={waits_key(ns)}"}.get(task, f"{ns}:counter")
            args = ["node", str(BULL / "bench.js"), "worker", url, ns, str(concurrency), body]
        else:
            queue = "bench-queue" if task == "noop" else "incr-queue"
            args = [python, "-m", "jobq", "worker", "--queue", f"{queue}:{concurrency}",
                    "--metrics-port", "0"]
        env = self.env(url, ns, jobs)
        if task == "noop":
            env["JOBQ_LOG_LEVEL"] = "warning"
        with log.open("ab") as out:
            return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=log.parent)

    def fill(self, url: str, ns: str, jobs: int, task: str = "incr") -> None:
        """Enqueue ``jobs`` jobs as fast as the system allows (not timed)."""
        if self.is_bull:
            subprocess.run(["node", str(BULL / "bench.js"), "fill", url, ns, str(jobs)],
                           check=True, env=self.env(url, ns, jobs))
        else:
            produce(self, url, ns, jobs, in_flight=64, task=task)

    def paced(self, url: str, ns: str, jobs: int, rate: float) -> None:
        """Enqueue ``jobs`` stamped jobs at ``rate`` jobs/s (one call each, on a schedule: a
        slow answer does not delay the next call)."""
        if self.is_bull:
            subprocess.run(["node", str(BULL / "bench.js"), "paced", url, ns, str(jobs),
                            str(rate)], check=True, capture_output=True,
                           env=self.env(url, ns, jobs))
        else:
            subprocess.run([sys.executable, str(BENCH / "sidebyside.py"), "--produce-paced", url,
                            ns, str(jobs), str(rate)], check=True, capture_output=True,
                           env=self.env(url, ns, jobs))

    def enqueue_rate(self, url: str, ns: str, jobs: int) -> float:
        """Jobs/s of one producer process, one call at a time."""
        if self.is_bull:
            out = subprocess.run(["node", str(BULL / "bench.js"), "enqueue", url, ns, str(jobs)],
                                 check=True, capture_output=True, env=self.env(url, ns, jobs))
            seconds = json.loads(out.stdout.decode().strip().splitlines()[-1])["seconds"]
        else:
            seconds = produce(self, url, ns, jobs, in_flight=1)
        return jobs / seconds


def waits_key(ns: str) -> str:
    return f"{ns}:waits"


def produce(system: System, url: str, ns: str, jobs: int, in_flight: int,
            task: str = "incr") -> float:
    out = subprocess.run(
        [sys.executable, str(BENCH / "sidebyside.py"), "--produce", url, ns, str(jobs),
         str(in_flight), task],
        check=True, capture_output=True, env=system.env(url, ns, jobs))
    return float(json.loads(out.stdout.decode().strip().splitlines()[-1])["seconds"])


async def _produce(url: str, ns: str, jobs: int, in_flight: int, task: str) -> float:
    """The Python producer (a process of its own, like Node's): jobq.Client.enqueue."""
    from jobq.client import Client
    from jobq.connection import connect
    from jobq.settings import Settings
    from jobq.tasks import load_registry

    settings = Settings(redis_url=url, key_prefix=ns, tasks=["benchtasks"])
    redis = connect(url)
    client = Client(redis, load_registry(settings.tasks), settings)
    tag = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    if in_flight == 1:
        for i in range(jobs):
            await client.enqueue(task, f"{tag}-{i}", {"n": i})
    else:
        sem = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with sem:
                await client.enqueue(task, f"{tag}-{i}", {"n": i})

        await asyncio.gather(*(one(i) for i in range(jobs)))
    seconds = time.perf_counter() - started
    await redis.aclose()
    return seconds


async def _produce_paced(url: str, ns: str, jobs: int, rate: float) -> None:
    """The Python paced producer: ``stamp`` jobs carrying their enqueue time, on a schedule."""
    from jobq.client import Client
    from jobq.connection import connect
    from jobq.settings import Settings
    from jobq.tasks import load_registry

    settings = Settings(redis_url=url, key_prefix=ns, tasks=["benchtasks"])
    redis = connect(url)
    client = Client(redis, load_registry(settings.tasks), settings)
    tag = uuid.uuid4().hex[:8]
    calls: list[asyncio.Task[object]] = []
    started = time.perf_counter()
    sent = 0
    while sent < jobs:
        due = min(jobs, int((time.perf_counter() - started) * rate) + 1)
        for i in range(sent, due):
            calls.append(asyncio.ensure_future(client.enqueue(
                "stamp", f"{tag}-{i}", {"n": i, "t": time.time() * 1000})))
        sent = due
        await asyncio.sleep(0.001)
    await asyncio.gather(*calls)
    await redis.aclose()


def produce_main(argv: list[str]) -> None:
    url, ns, jobs, in_flight, task = argv
    try:
        from jobq.loop import run
    except ImportError:  # an older jobq (--baseline) has no loop helper
        run = asyncio.run  # type: ignore[assignment]
    seconds = run(_produce(url, ns, int(jobs), int(in_flight), task))
    print(json.dumps({"seconds": seconds}))


def produce_paced_main(argv: list[str]) -> None:
    url, ns, jobs, rate = argv
    from jobq.loop import run
    run(_produce_paced(url, ns, int(jobs), float(rate)))


# --- measuring --------------------------------------------------------------------------------

def cpu_s(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def redis_cpu_s(r: SyncRedis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@dataclass
class Drain:
    rate: float  # steady jobs/s: from 10% to 90% of the jobs completed
    worker_cpu_ms: float  # per job, start-up included
    redis_cpu_ms: float  # per job, during the drain


def drain(system: System, url: str, jobs: int, workers: int, concurrency: int, logdir: Path,
          task: str = "incr") -> Drain:
    r = SyncRedis.from_url(url)
    ns = f"sbs{uuid.uuid4().hex[:8]}"
    system.fill(url, ns, jobs, task)
    key = (system.completed_key(ns) if task == "incr" or system.is_bull
           else f"{ns}:{{bench-queue}}:completed")
    redis_before = redis_cpu_s(r)
    procs = [system.worker(url, ns, jobs, concurrency, logdir / f"{system.label}-{ns}-{n}.log",
                           task) for n in range(workers)]
    marks: dict[int, float] = {}
    lo, hi = jobs // 10, jobs - jobs // 10
    try:
        deadline = time.monotonic() + 60 + jobs / 100
        while True:
            done = int(r.zcard(key))
            now = time.perf_counter()
            if done >= lo and lo not in marks:
                marks[lo] = now
            if done >= hi and hi not in marks:
                marks[hi] = now
            if done >= jobs:
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{system.label} did not drain {jobs} jobs (logs in {logdir})")
            time.sleep(POLL_S)
        worker_cpu = sum(cpu_s(p.pid) for p in procs)
        redis_cpu = redis_cpu_s(r) - redis_before
    finally:
        stop(procs)
        r.flushall()
        r.close()
    return Drain((hi - lo) / (marks[hi] - marks[lo]), worker_cpu / jobs * 1000,
                 redis_cpu / jobs * 1000)


WARM_UP_JOBS = 50  # paced through first, not counted: connections made, scripts loaded


def waits_ms(system: System, url: str, jobs: int, rate: float, concurrency: int,
             logdir: Path) -> tuple[float, float]:
    """One worker process at ``concurrency``, fed ``jobs`` realistic jobs at ``rate`` jobs/s
    (below its drain rate, so it keeps up): the p50 and p99 of each job's wait from its
    enqueue call to its body's start (ms, the same clock for both), after a warm-up."""
    r = SyncRedis.from_url(url)
    ns = f"sbs{uuid.uuid4().hex[:8]}"
    key = system.completed_key(ns)
    proc = system.worker(url, ns, WARM_UP_JOBS + jobs, concurrency,
                         logdir / f"{system.label}-{ns}-waits.log", "stamp")
    try:
        for count, expected in ((WARM_UP_JOBS, WARM_UP_JOBS), (jobs, WARM_UP_JOBS + jobs)):
            if count == jobs:
                r.delete(waits_key(ns))
            system.paced(url, ns, count, rate if count == jobs else 1000)
            deadline = time.monotonic() + 60 + jobs / 100
            while int(r.zcard(key)) < expected:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{system.label}: {r.zcard(key)} of {expected} jobs done "
                                       f"(logs in {logdir})")
                time.sleep(0.01)
        waited = sorted(float(w) for w in r.lrange(waits_key(ns), 0, -1))
    finally:
        stop([proc])
        r.flushall()
        r.close()
    if len(waited) != jobs:
        raise RuntimeError(f"{system.label}: {len(waited)} waits recorded for {jobs} jobs")
    return waited[len(waited) // 2], waited[min(len(waited) - 1, int(len(waited) * 0.99))]


def image_python() -> str:
    """A Python holding the packages the image installs (requirements.lock: no dev tools) and
    this tree's jobq, for the start-up rows: a deployed worker's imports. In the development
    venv structlog also imports rich and pygments (schemathesis's), which the image lacks: 30 %
    more import CPU. Built once per lock, under ~/.cache/jobq (JOBQ_CACHE_DIR)."""
    lock = REPO / "requirements.lock"
    cache = Path(os.environ.get("JOBQ_CACHE_DIR", Path.home() / ".cache" / "jobq"))
    venv = cache / f"bench-image-venv-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                        "--require-hashes", "-r", str(lock)], check=True)
        (venv / ".complete").touch()
    # jobq itself: the tree the development venv's editable install maps (jobq.worker = worker/).
    import jobq

    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = subprocess.run([str(python), "-c", where],
                          check=True, capture_output=True, text=True).stdout.strip()
    tree = Path(jobq.__file__).parent.parent  # not resolved: its files are links into the repo
    (Path(site) / "jobq-tree.pth").write_text(f"{tree}\n")
    return str(python)


def startup_s(system: System, url: str, logdir: Path) -> tuple[float, float]:
    """Spawn of a worker process -> its first job completed (one job waiting): wall-clock
    seconds, and the CPU seconds the process used by then (steadier on a loaded machine)."""
    r = SyncRedis.from_url(url)
    ns = f"sbs{uuid.uuid4().hex[:8]}"
    system.fill(url, ns, 1)
    key = system.completed_key(ns)
    started = time.perf_counter()
    proc = system.worker(url, ns, 1, 4, logdir / f"{system.label}-{ns}-start.log",
                         python=image_python())
    try:
        while not r.zcard(key):
            if proc.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError(f"{system.label} did not start (logs in {logdir})")
            time.sleep(0.001)
        return time.perf_counter() - started, cpu_s(proc.pid)
    finally:
        stop([proc])
        r.flushall()
        r.close()


def enqueue_one_at_a_time(system: System, url: str, jobs: int) -> float:
    r = SyncRedis.from_url(url)
    try:
        return system.enqueue_rate(url, f"sbs{uuid.uuid4().hex[:8]}", jobs)
    finally:
        r.flushall()
        r.close()


# --- servers and set-up -----------------------------------------------------------------------

class OtlpSink:
    """A local OTLP/HTTP receiver for ``--traced``: answers every export with an empty
    success (what a collector answers), counting requests and bytes. Its own CPU is not the
    worker's, so it only needs to be quick."""

    def __init__(self) -> None:
        import http.server
        import threading

        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(size)
                sink.requests += 1
                sink.bytes += size
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.requests = 0
        self.bytes = 0
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()


def start_server(kind: str, logdir: Path) -> tuple[str, Callable[[], None], str]:
    from jobq.embedded import ServerProcess, redis_binary, valkey_binary

    binary = redis_binary() if kind == "redis" else valkey_binary()
    server = ServerProcess(binary, logdir / kind).start()
    r = SyncRedis.from_url(server.url)
    info = r.info("server")
    r.close()
    version = info.get("valkey_version") or info["redis_version"]
    return server.url, server.stop, f"{info.get('server_name', 'redis')} {version}"


def install_bullmq() -> None:
    """node_modules from the lock file (not committed); npm ci only when missing."""
    if not (BULL / "node_modules" / "bullmq").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BULL,
                       check=True)


def compile_bytecode(system: System, workdir: Path) -> None:
    """Compile jobq's modules (as a worker imports them) and the bench's tasks to bytecode
    once, as the image does at build time (Dockerfile: compileall). Without it, where
    PYTHONDONTWRITEBYTECODE is set (as on these machines) every worker start compiles jobq's
    sources again, a cost a deployed worker never pays."""
    if system.is_bull:
        return
    code = ("import compileall, os, sys, jobq; "
            "sys.exit(not all(compileall.compile_dir(d, quiet=1) for d in sys.argv[1:] + "
            "[os.path.dirname(jobq.__file__)]))")
    subprocess.run([sys.executable, "-c", code, str(BENCH)], check=True, cwd=workdir,
                   env=system.env("redis://unused", "unused", 0))


def baseline_tree(ref: str, into: Path) -> str:
    """jobq's code at ``ref`` laid out as the installed package (jobq.worker = worker/ ...)."""
    archive = into / "baseline.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), ref,
                    "jobq", "worker", "api", "operator"], check=True)
    src = into / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    root = into / "baseline"
    shutil.copytree(src / "jobq", root / "jobq")
    for part in ("worker", "api", "operator"):
        shutil.copytree(src / part, root / "jobq" / part)
    install_missing_dependencies(ref, root)
    return str(root)


def install_missing_dependencies(ref: str, root: Path) -> None:
    """Install into ``root`` the packages ``ref``'s lock pins that this venv has not at all (a
    baseline from before a dependency was dropped, e.g. pydantic-settings)."""
    lock = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:requirements-dev.lock"],
                          check=True, capture_output=True, text=True).stdout
    missing = []
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", lock, re.MULTILINE):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(f"{name}=={version}")
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(root), *missing], check=True)


# --- the run ----------------------------------------------------------------------------------

@dataclass
class Table:
    systems: list[System]
    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, row: str, system: str, value: float) -> None:
        self.rows.setdefault(row, {}).setdefault(system, []).append(value)

    def print(self, title: str) -> None:
        labels = [s.label for s in self.systems]
        ratio_head = " | ".join(f"{s} / bullmq" for s in labels if s != "bullmq")
        print(f"\n{title}\n")
        print(f"| | {' | '.join(labels)} | {ratio_head} |")
        print("|---|" + "---:|" * (len(labels) * 2 - 1))
        for row, per in self.rows.items():
            med = {s: statistics.median(per[s]) for s in labels if s in per}
            cells = " | ".join(fmt(row, med[s]) if s in med else "" for s in labels)
            bull = med.get("bullmq")
            ratios = " | ".join(
                f"{med[s] / bull:.2f}" if bull and s in med else "" for s in labels
                if s != "bullmq")
            print(f"| {row} | {cells} | {ratios} |", flush=True)


def fmt(row: str, value: float) -> str:
    if "ms/job" in row:
        return f"{value:.3f}"
    if " ms (" in row:
        return f"{value:.1f}"
    if row.startswith("start-up"):
        return f"{value:.2f} s"
    return f"{value:,.0f}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--produce":
        produce_main(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--produce-paced":
        produce_paced_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", default="10000,100000", help="comma-separated job counts")
    parser.add_argument("--concurrency", default="4,64")
    parser.add_argument("--workers", default="1,2", help="worker processes")
    parser.add_argument("--noop-concurrency", default="4,64",
                        help="concurrencies of the no-op rows (one process; '' = none)")
    parser.add_argument("--wait-concurrency", default="4",
                        help="concurrencies of the wait rows: enqueue -> start, p50/p99, one "
                             "process fed at half BullMQ's drain rate ('' = none)")
    parser.add_argument("--servers", default="redis,valkey")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--enqueue-jobs", type=int, default=5000)
    parser.add_argument("--baseline", metavar="REF", help="also run jobq at this git commit")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                        help="also run jobq with PATH first on its PYTHONPATH, e.g. a folder "
                             "holding another version of a dependency (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="--jobs 10000 --servers valkey --trials 1")
    parser.add_argument("--traced", action="store_true",
                        help="also jobq with tracing on: SDK, batch processor, OTLP/HTTP "
                             "exporter to a local receiver (R25)")
    parser.add_argument("--startup-only", action="store_true",
                        help="only the start-up rows, --trials times each (they are noisy)")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.servers, args.trials = "10000", "valkey", 1
    install_bullmq()
    logdir = Path(tempfile.mkdtemp(prefix="jobq-sbs-"))
    systems = [System("jobq"), System("bullmq")]
    if args.baseline:
        systems.insert(1, System(f"jobq@{args.baseline}", baseline_tree(args.baseline, logdir)))
    for also in args.also:
        label, _, path = also.partition("=")
        systems.insert(1, System(label, path))
    sink = None
    if args.traced:
        sink = OtlpSink()
        systems.insert(1, System("jobq+otel", extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}))
    for s in systems:
        compile_bytecode(s, logdir)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    bull = json.loads((BULL / "node_modules" / "bullmq" / "package.json").read_text())["version"]
    print(f"machine: {platform.node()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; "
          f"Python {platform.python_version()}, Node {node}, BullMQ {bull}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    for kind in args.servers.split(","):
        url, stop_server, name = start_server(kind, logdir)
        table = Table(systems)
        try:
            for trial in range(args.trials):
                order = systems if trial % 2 == 0 else systems[::-1]
                for jobs in [] if args.startup_only else map(int, args.jobs.split(",")):
                    for workers in map(int, args.workers.split(",")):
                        for conc in map(int, args.concurrency.split(",")):
                            for s in order:
                                d = drain(s, url, jobs, workers, conc, logdir)
                                head = f"{jobs:,} jobs, {workers} proc x {conc}"
                                table.add(f"drain {head}, steady jobs/s", s.label, d.rate)
                                table.add(f"  worker CPU ms/job ({head})", s.label,
                                          d.worker_cpu_ms)
                                table.add(f"  Redis CPU ms/job ({head})", s.label,
                                          d.redis_cpu_ms)
                for s in order:
                    if not args.startup_only:
                        table.add("enqueue, one call at a time, jobs/s", s.label,
                                  enqueue_one_at_a_time(s, url, args.enqueue_jobs))
                    wall, cpu = startup_s(s, url, logdir)
                    table.add("start-up, spawn -> first job done", s.label, wall)
                    table.add("start-up CPU, spawn -> first job done", s.label, cpu)
                # Waits at a steady load: half BullMQ's drain rate at that concurrency.
                wait_conc = [int(c) for c in args.wait_concurrency.split(",") if c]
                for conc in [] if args.startup_only else wait_conc:
                    bull = next(s for s in systems if s.is_bull)
                    full = drain(bull, url, int(args.jobs.split(",")[0]), 1, conc, logdir).rate
                    rate = round(full / 2)
                    count = max(1000, min(20000, rate * 5))
                    for s in order:
                        p50, p99 = waits_ms(s, url, count, rate, conc, logdir)
                        head = f"1 proc x {conc}, fed at half BullMQ's drain"
                        table.add(f"wait enqueue -> start, p50 ms ({head})", s.label, p50)
                        table.add(f"wait enqueue -> start, p99 ms ({head})", s.label, p99)
                        table.add(f"  jobs/s fed ({head})", s.label, rate)
                # The engine alone: a no-op body (jobq's logs off: warning), one process.
                noop_jobs = int(args.jobs.split(",")[0])
                noop_conc = [int(c) for c in args.noop_concurrency.split(",") if c]
                for conc in [] if args.startup_only else noop_conc:
                    for s in order:
                        d = drain(s, url, noop_jobs, 1, conc, logdir, "noop")
                        head = f"{noop_jobs:,} no-op jobs, 1 proc x {conc}"
                        table.add(f"engine: {head}, steady jobs/s", s.label, d.rate)
                        table.add(f"  worker CPU ms/job ({head})", s.label, d.worker_cpu_ms)
        finally:
            stop_server()
        table.print(f"{name} (median of {args.trials} interleaved trial(s)):")
    if sink is not None:
        print(f"OTLP receiver: {sink.requests} export requests, {sink.bytes:,} bytes")
        sink.stop()
    shutil.rmtree(logdir, ignore_errors=True)


if __name__ == "__main__":
    main()
