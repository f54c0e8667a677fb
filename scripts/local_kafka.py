#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker on loopback for tests and the demo.

There is no Docker on our machines and the network reaches only package
registries, so the usual ``docker run apache/kafka`` is not an option.  What we
do have is Java 17, Maven and Maven Central, which hosts the official Kafka
server jars (``org.apache.kafka:kafka_2.13``).  This script:

* ``fetch``  - writes a tiny pom.xml into a cache dir and lets Maven copy the
  broker's runtime jars (plus a log4j2 SLF4J binding, without which the broker
  logs nothing at all) into ``<cache>/libs``.  Done once, then skipped.
* ``start``  - writes a KRaft combined-mode (broker + controller, node 1, static
  quorum) ``server.properties`` bound to free 127.0.0.1 ports, formats the
  storage, launches ``kafka.Kafka`` detached and waits until it really serves
  requests.  Prints only the bootstrap address (``127.0.0.1:PORT``) on stdout
  (``--sasl``: the SASL listener's address instead).
  Idempotent: a live, ready broker from an earlier start is reused.
* ``stop``   - SIGTERM (then SIGKILL after 30 s) and forget the broker.
* ``status`` - print the bootstrap address and exit 0 if the broker is ready.
* ``kill``   - SIGKILL the broker's process group, as a crash would (no clean
  shutdown), and wait until it is gone.  Keeps broker.json, server.properties
  and the data dir, so ``restart`` can bring the same broker back.
* ``restart`` - start the broker of an earlier ``start`` again after ``kill``
  (or ``stop``): same server.properties, data dir, cluster id and ports, so
  clients reconnect to the same bootstrap addresses and find their topics and
  committed offsets.  No wipe, no storage format.  Waits for readiness like
  ``start`` and prints the bootstrap address the same way.  The killed
  broker's connections linger in TIME_WAIT on its ports; the JVM opens server
  sockets with SO_REUSEADDR, so the listeners rebind at once (checked by
  tests/integration/test_local_kafka_restart.py).  A ready broker that still
  runs is reused, one that runs but is not ready is killed first.

Listeners (all on 127.0.0.1):
  PLAINTEXT       the bootstrap address above; no authentication.
  SASL_PLAINTEXT  a second port (state key ``sasl_bootstrap``; ``start --sasl-port``
                  fixes it) with SASL mechanism PLAIN and ONE fixed test account,
                  user ``SASL_USERNAME`` / password ``SASL_PASSWORD`` (constants
                  below: ``labelwatch`` / ``labelwatch-local-sasl-secret``).  A
                  loopback test broker only; there is no authorizer, so the user
                  may do anything.  Used by tests/integration/test_kafka_security.py.
  CONTROLLER      KRaft's own, PLAINTEXT.

A broker started by an older version of this script (``STATE_VERSION`` below,
recorded in broker.json) is not reused: ``start`` stops it and starts afresh, so
a broker left running from before the SASL listener existed gets it.

It is stdlib-only so it runs with plain ``python3`` before any venv exists, and
it is importable: ``fetch()``, ``start()``, ``stop()`` and ``status()`` are what
a pytest session fixture calls; chaos tests add ``kill()`` and ``restart()``.

Environment overrides:
  LABELWATCH_KAFKA_VERSION  Kafka version (default KAFKA_VERSION below)
  LABELWATCH_KAFKA_CACHE    base cache dir; jars go to <base>/<version>/
                            (default <repo>/.cache/kafka)
  LABELWATCH_KAFKA_RUN_DIR  broker run dir (default <repo>/.cache/kafka/run)

Version notes: Kafka 4.1.1 works with both our clients (kafka-python 3.0.12 and
aiokafka 0.14): produce, consume, consumer-group commits and admin topic
creation were checked against it.  Kafka 4.1.1 is built against slf4j-api
1.7.36 and log4j 2.24.3, so the matching binding is log4j-slf4j-impl (the
SLF4J 1.x one, as in the official Kafka tarball); log4j-slf4j2-impl would be
ignored by slf4j 1.7 and the broker would silently log nothing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.1.1"
SCALA_BINARY = "2.13"
# Same log4j2 release that kafka_2.13:4.1.1 itself depends on (via kafka-server);
# as a direct dependency it wins Maven's mediation, so core and binding always match.
LOG4J_VERSION = "2.24.3"
# Pinned so the build does not depend on whatever default Maven's super-POM picks.
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_ID = 1
# A bit over 2 MiB so the app can send 2 MiB payloads plus record overhead.
MESSAGE_MAX_BYTES = 2 * 1024 * 1024 + 64 * 1024
STARTED_MARKER = "Kafka Server started"
STOP_GRACE_SECONDS = 30.0
# SIGKILL cannot be ignored; a process that outlives this is stuck in the kernel.
KILL_WAIT_SECONDS = 30.0

# Bumped whenever the listeners or other broker settings change: start() replaces a
# running broker whose broker.json has another version instead of reusing it. (Not bumped
# for the broker session timeout: it only makes restart() faster, nothing needs it.)
STATE_VERSION = 2
# The SASL_PLAINTEXT listener's only account (PLAIN). A fixed test credential for a
# loopback broker; never use these anywhere else.
SASL_USERNAME = "labelwatch"
SASL_PASSWORD = "labelwatch-local-sasl-secret"  # noqa: S105 - test broker on loopback

STATE_FILE = "broker.json"
PROPERTIES_FILE = "server.properties"
SERVER_LOG = "server.log"  # written by log4j2 (INFO and up)
CONSOLE_LOG = "broker.out"  # JVM stdout/stderr: WARN+ and any crash output
DATA_DIR = "data"  # KRaft metadata log and topic partitions
META_PROPERTIES = "meta.properties"  # in DATA_DIR, written by the storage format
LOCK_FILE = ".lock"
LIBS_MARKER = ".complete"

# Brokers started by this process: keeping the Popen objects lets stop() reap
# them and avoids "subprocess is still running" ResourceWarnings under pytest.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

# What broker.json holds and start()/restart()/status() return: bootstrap, sasl_bootstrap,
# pid, run_dir, version, cluster_id and log_offset (where this run's lines begin in
# server.log, which restarts append to).
State = dict[str, Any]


class KafkaError(RuntimeError):
    """Raised when the broker cannot be fetched, started or reached."""


def _run_checked(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    """Run a tool to completion; on failure show the tail of its output and raise."""
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-8000:])
        raise KafkaError(f"{what} failed (exit {proc.returncode})")


def _log(msg: str) -> None:
    # stdout is reserved for the bootstrap address, so all chatter goes here.
    print(f"[local_kafka] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Paths and locking
# --------------------------------------------------------------------------


def kafka_version() -> str:
    return os.environ.get("LABELWATCH_KAFKA_VERSION") or KAFKA_VERSION


def cache_dir(version: str | None = None) -> Path:
    base = os.environ.get("LABELWATCH_KAFKA_CACHE")
    root = Path(base) if base else REPO_ROOT / ".cache" / "kafka"
    return root / (version or kafka_version())


def default_run_dir() -> Path:
    env = os.environ.get("LABELWATCH_KAFKA_RUN_DIR")
    return Path(env) if env else REPO_ROOT / ".cache" / "kafka" / "run"


def _resolve_run_dir(run_dir: str | os.PathLike[str] | None) -> Path:
    return Path(run_dir).resolve() if run_dir else default_run_dir().resolve()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Serialises concurrent fetch/start/stop (e.g. parallel pytest workers).
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _require_tool(name: str) -> str:
    if name == "java" and os.environ.get("JAVA_HOME"):
        candidate = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        raise KafkaError(f"'{name}' not found on PATH (Java 17+ and Maven are required)")
    return found


# --------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------


def _pom_xml(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/local_kafka.py: only used to download the broker jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>labelwatch.local</groupId>
  <artifactId>local-kafka</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_BINARY}</artifactId>
      <version>{version}</version>
    </dependency>
    <!-- SLF4J 1.x binding: Kafka uses slf4j-api 1.7.x; without it nothing is logged. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


# The file appender's path comes from -Dkafka.logs.dir so one config serves any run dir.
LOG4J2_PROPERTIES = """\
# Generated by scripts/local_kafka.py
status = warn
name = labelwatch-local-kafka

appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n

appender.console.type = Console
appender.console.name = CONSOLE
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
rootLogger.appenderRef.console.ref = CONSOLE
rootLogger.appenderRef.console.level = WARN

# Per-request logging is far too chatty for a test broker.
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def fetch(version: str | None = None) -> Path:
    """Download the broker jars with Maven (once) and return the cache dir.

    The cache dir holds pom.xml, log4j2.properties and libs/ (the classpath).
    """
    version = version or kafka_version()
    cdir = cache_dir(version)
    libs = cdir / "libs"
    pom = _pom_xml(version)
    # The marker records which pom produced libs/, so editing the pins refetches.
    fingerprint = hashlib.sha256(pom.encode()).hexdigest()
    with _locked(cdir):
        (cdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        marker = libs / LIBS_MARKER
        if marker.is_file() and marker.read_text().strip() == fingerprint:
            return cdir
        mvn = _require_tool("mvn")
        (cdir / "pom.xml").write_text(pom)
        # Start from an empty libs/ so a half-finished earlier run leaves no junk.
        shutil.rmtree(libs, ignore_errors=True)
        _log(f"fetching Kafka {version} jars with Maven into {libs}")
        t0 = time.monotonic()
        _run_checked(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(cdir / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={libs}",
            ],
            f"mvn fetching Kafka {version}",
            cwd=cdir,
        )
        if not list(libs.glob(f"kafka_{SCALA_BINARY}-{version}*.jar")):
            raise KafkaError(f"mvn succeeded but no kafka_{SCALA_BINARY}-{version} jar in {libs}")
        marker.write_text(fingerprint + "\n")
        _log(f"fetched {len(list(libs.glob('*.jar')))} jars in {time.monotonic() - t0:.1f}s")
    return cdir


# --------------------------------------------------------------------------
# Kafka wire protocol: ApiVersions v0 readiness probe
# --------------------------------------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
    return bytes(buf)


def api_versions_ok(bootstrap: str, timeout: float = 2.0) -> bool:
    """True if the broker answers a hand-built ApiVersions v0 request cleanly.

    Accepting TCP is not enough: the socket server opens before the broker can
    actually serve requests.  ApiVersions is what every client sends first.
    """
    host, _, port = bootstrap.rpartition(":")
    correlation_id = int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF
    client_id = b"labelwatch-local-kafka"
    # Request header v1: api_key=18 (ApiVersions), api_version=0, correlation id,
    # nullable string client_id (int16 length + bytes); v0 has an empty body.
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 10 <= size <= 1 << 20:
                return False
            payload = _recv_exact(sock, size)
    except (OSError, ConnectionError, struct.error):
        return False
    # Response header v0 (correlation id), then error_code and the api array.
    resp_corr, error_code, n_apis = struct.unpack_from(">ihi", payload, 0)
    return bool(resp_corr == correlation_id and error_code == 0 and n_apis > 0)


# --------------------------------------------------------------------------
# Process helpers
# --------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    # Reap first if it is our own child: a zombie would still pass kill(pid, 0).
    if pid in _CHILDREN:
        if _CHILDREN[pid].poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_our_broker(pid: int, run_dir: Path) -> bool:
    # Guards against pid reuse: only signal a kafka.Kafka started for this run dir.
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [a.decode(errors="replace") for a in cmdline]
    return "kafka.Kafka" in args and str(run_dir / PROPERTIES_FILE) in args


def _terminate(pid: int, grace: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.2)
    _log(f"broker pid {pid} ignored SIGTERM for {grace:.0f}s; sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # it leads its own session/group
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 256 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _dump_logs(run_dir: Path) -> None:
    for name in (SERVER_LOG, CONSOLE_LOG):
        tail = _tail(run_dir / name)
        if tail.strip():
            sys.stderr.write(f"----- last 40 lines of {run_dir / name} -----\n{tail}\n")
    sys.stderr.flush()


def _log_has_started(run_dir: Path, since: int = 0) -> bool:
    # ``since``: the log size when this run was launched; earlier runs' lines do not count.
    try:
        with open(run_dir / SERVER_LOG, "rb") as fh:
            fh.seek(since)
            return STARTED_MARKER.encode() in fh.read()
    except OSError:
        return False


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _free_port() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


def _pick_ports(port: int, sasl_port: int = 0) -> tuple[int, int, int]:
    """Return (broker port, SASL port, controller port); 0 means any free loopback port."""
    # Hold all probe sockets at once so the ports cannot coincide.
    with contextlib.ExitStack() as stack:

        def pick(wanted: int) -> int:
            if not wanted:
                return int(stack.enter_context(_free_port()).getsockname()[1])
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                probe.bind(("127.0.0.1", wanted))
            except OSError as exc:
                raise KafkaError(f"port {wanted} on 127.0.0.1 is not free: {exc}") from exc
            return wanted

        broker_port = pick(port)
        sasl = pick(sasl_port)
        controller_port = pick(0)
    return broker_port, sasl, controller_port


def _new_cluster_id() -> str:
    # Kafka's own format: URL-safe base64 of 16 random bytes, no padding (22 chars).
    # Ids starting with '-' are skipped (as Kafka does): CLIs would read them as flags.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _server_properties(run_dir: Path, port: int, cport: int, sasl_port: int) -> str:
    props = {
        # KRaft combined mode: one JVM is both the only controller and the only broker.
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        # Static quorum (no dynamic voter bootstrap), so format needs no --standalone.
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{cport}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
            f"CONTROLLER://127.0.0.1:{cport}"
        ),
        "advertised.listeners": (
            f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        ),
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": (
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
        ),
        # The SASL listener: PLAIN with the one test account (see the module docstring).
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USERNAME}="{SASL_PASSWORD}";'
        ),
        "log.dirs": str(run_dir / DATA_DIR),
        # Single node: every internal topic must live with one replica.
        "num.partitions": 1,
        "default.replication.factor": 1,
        "offsets.topic.replication.factor": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        # Few internal partitions: faster first group join / transaction on a test box.
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.num.partitions": 1,
        # After a kill, the restarted controller lets the broker register again only once the
        # killed incarnation's session has expired: 9 s by default, which made restart()
        # take ~16 s instead of ~7 s. Heartbeats stay 4x more frequent than the timeout.
        "broker.session.timeout.ms": 4000,
        "broker.heartbeat.interval.ms": 1000,
        # Tests want consumers to get assignments at once, not after 3 s.
        "group.initial.rebalance.delay.ms": 0,
        # Topics are created explicitly; typos must fail rather than create topics.
        "auto.create.topics.enable": "false",
        "message.max.bytes": MESSAGE_MAX_BYTES,
        "replica.fetch.max.bytes": MESSAGE_MAX_BYTES,
        # The default 128 MiB cleaner buffer is a quarter of our small heap.
        "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
    }
    lines = ["# Generated by scripts/local_kafka.py - recreated on every fresh start"]
    lines += [f"{key}={value}" for key, value in props.items()]
    return "\n".join(lines) + "\n"


def _java_cmd(cdir: Path, run_dir: Path, *jvm_opts: str) -> list[str]:
    return [
        _require_tool("java"),
        *jvm_opts,
        f"-Dlog4j2.configurationFile={cdir / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={run_dir}",
        "-Djava.awt.headless=true",
        "-cp",
        # The JVM expands the trailing '*' itself; no shell involved.
        str(cdir / "libs" / "*"),
    ]


# --------------------------------------------------------------------------
# start / stop / status
# --------------------------------------------------------------------------


def _read_state(run_dir: Path) -> State | None:
    try:
        state = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "pid" in state and "bootstrap" in state else None


def _current(state: State) -> bool:
    """True if the broker of ``state`` was started by this version of the script."""
    return state.get("version") == STATE_VERSION and bool(state.get("sasl_bootstrap"))


def _ready(state: State, run_dir: Path) -> bool:
    # ApiVersions is answered before authentication, so it probes the SASL listener too.
    return (
        _current(state)
        and _is_our_broker(int(state["pid"]), run_dir)
        and _log_has_started(run_dir, int(state.get("log_offset", 0)))
        and api_versions_ok(state["bootstrap"])
        and api_versions_ok(state["sasl_bootstrap"])
    )


def status(run_dir: str | os.PathLike[str] | None = None) -> State | None:
    """Return the state dict if a ready broker runs in run_dir, else None."""
    rdir = _resolve_run_dir(run_dir)
    state = _read_state(rdir)
    return state if state is not None and _ready(state, rdir) else None


def _stop_unlocked(rdir: Path) -> None:
    state = _read_state(rdir)
    if state is not None:
        pid = int(state["pid"])
        if _is_our_broker(pid, rdir):
            _log(f"stopping broker pid {pid}")
            _terminate(pid, STOP_GRACE_SECONDS)
    with contextlib.suppress(FileNotFoundError):
        (rdir / STATE_FILE).unlink()


def stop(run_dir: str | os.PathLike[str] | None = None) -> None:
    """Stop the broker of run_dir (if any) and forget it. Never fails if none runs."""
    rdir = _resolve_run_dir(run_dir)
    if not rdir.is_dir():
        return
    with _locked(rdir):
        _stop_unlocked(rdir)


def _wipe(rdir: Path) -> None:
    # Only our own files: a mistyped --dir must never cost anyone their data.
    for name in (STATE_FILE, PROPERTIES_FILE, SERVER_LOG, CONSOLE_LOG, DATA_DIR):
        entry = rdir / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def start(
    run_dir: str | os.PathLike[str] | None = None,
    port: int = 0,
    timeout: float = 90.0,
    sasl_port: int = 0,
) -> State:
    """Start (or reuse) a ready broker and return its state: "bootstrap" (PLAINTEXT),
    "sasl_bootstrap" (SASL_PLAINTEXT, PLAIN), "pid", "run_dir" and "version"."""
    cdir = fetch()
    rdir = _resolve_run_dir(run_dir)
    with _locked(rdir):
        state = _read_state(rdir)
        if state is not None:
            same_port = not port or state["bootstrap"].endswith(f":{port}")
            same_sasl_port = not sasl_port or str(state.get("sasl_bootstrap", "")).endswith(
                f":{sasl_port}"
            )
            if not _current(state) and _is_our_broker(int(state["pid"]), rdir):
                _log(
                    f"broker pid {state['pid']} was started by an older local_kafka.py "
                    "(no SASL listener); replacing it"
                )
            elif same_port and same_sasl_port and _ready(state, rdir):
                _log(f"reusing running broker pid {state['pid']} at {state['bootstrap']}")
                return state
            _stop_unlocked(rdir)
        _wipe(rdir)
        return _start_fresh(cdir, rdir, port, timeout, sasl_port)


def _start_fresh(cdir: Path, rdir: Path, port: int, timeout: float, sasl_port: int) -> State:
    t0 = time.monotonic()  # the timeout covers storage format as well as broker startup
    ports = _pick_ports(port, sasl_port)
    props = rdir / PROPERTIES_FILE
    props.write_text(_server_properties(rdir, ports[0], ports[2], ports[1]))

    cluster_id = _new_cluster_id()
    _run_checked(
        [
            *_java_cmd(cdir, rdir, "-Xmx256m"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
        ],
        "kafka-storage format",
    )
    try:
        return _launch(cdir, rdir, ports, cluster_id, t0, timeout)
    except KafkaError:
        with contextlib.suppress(FileNotFoundError):
            (rdir / STATE_FILE).unlink()
        raise


def _launch(
    cdir: Path,
    rdir: Path,
    ports: tuple[int, int, int],
    cluster_id: str,
    t0: float,
    timeout: float,
) -> State:
    """Run ``kafka.Kafka`` on rdir's server.properties (formatted storage) detached, record it
    in the state file and wait until it is ready: the started line in this run's part of
    server.log and ApiVersions answered on both client listeners. ``ports`` are (broker, SASL,
    controller) as in server.properties. On failure dump the logs, kill it and raise."""
    broker_port, sasl_port, controller_port = ports
    deadline = t0 + timeout
    log_offset = _file_size(rdir / SERVER_LOG)  # log4j2 appends: a restart adds to it
    with open(rdir / CONSOLE_LOG, "ab") as out:
        # New session: the broker outlives this script and ignores our terminal's ^C.
        proc = subprocess.Popen(
            [
                *_java_cmd(cdir, rdir, "-Xms256m", "-Xmx512m", "-XX:+UseG1GC"),
                "kafka.Kafka",
                str(rdir / PROPERTIES_FILE),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    state: State = {
        "bootstrap": f"127.0.0.1:{broker_port}",
        "sasl_bootstrap": f"127.0.0.1:{sasl_port}",
        "pid": proc.pid,
        "run_dir": str(rdir),
        "version": STATE_VERSION,
        "cluster_id": cluster_id,
        "log_offset": log_offset,
    }
    (rdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    _log(
        f"broker pid {proc.pid} starting on {state['bootstrap']} "
        f"(SASL_PLAINTEXT {state['sasl_bootstrap']}, controller :{controller_port}, "
        f"cluster {cluster_id})"
    )

    while True:
        if proc.poll() is not None:
            reason = f"broker exited with code {proc.returncode} during startup"
            break
        if (
            _log_has_started(rdir, log_offset)
            and api_versions_ok(state["bootstrap"])
            and api_versions_ok(state["sasl_bootstrap"])
        ):
            _log(f"broker ready in {time.monotonic() - t0:.1f}s")
            return state
        if time.monotonic() >= deadline:
            reason = f"broker not ready after {timeout:.0f}s"
            break
        time.sleep(0.2)

    _dump_logs(rdir)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _CHILDREN.pop(proc.pid, None)
    raise KafkaError(reason)


# --------------------------------------------------------------------------
# kill / restart: a crash and the same broker coming back
# --------------------------------------------------------------------------


def _kill_unlocked(rdir: Path) -> None:
    state = _read_state(rdir)
    if state is None:
        return
    pid = int(state["pid"])
    if not _is_our_broker(pid, rdir):
        return
    _log(f"killing broker pid {pid} (SIGKILL)")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # it leads its own session/group
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            raise KafkaError(f"broker pid {pid} still alive {KILL_WAIT_SECONDS:.0f}s after SIGKILL")
        time.sleep(0.05)


def kill(run_dir: str | os.PathLike[str] | None = None) -> None:
    """SIGKILL the broker of run_dir (its process group) and wait until it is gone, keeping
    its state file, properties and data for :func:`restart`. Never fails if none runs."""
    rdir = _resolve_run_dir(run_dir)
    if not rdir.is_dir():
        return
    with _locked(rdir):
        _kill_unlocked(rdir)


def _listener_ports(props: Path) -> tuple[int, int, int]:
    """(broker, SASL, controller) ports of the listeners in an existing server.properties."""
    try:
        text = props.read_text()
    except OSError as exc:
        raise KafkaError(f"cannot read {props} ({exc}): run start first") from None
    ports: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or key.strip() != "listeners":
            continue
        for listener in value.split(","):
            name, _, address = listener.strip().partition("://")
            port = address.rpartition(":")[2]
            if port.isdigit():
                ports[name] = int(port)
    try:
        return ports["PLAINTEXT"], ports["SASL_PLAINTEXT"], ports["CONTROLLER"]
    except KeyError:
        raise KafkaError(
            f"{props} lacks a PLAINTEXT, SASL_PLAINTEXT or CONTROLLER listener "
            "(written by an older local_kafka.py?): run start for a fresh broker"
        ) from None


def _cluster_id(rdir: Path) -> str:
    """The cluster id the storage format wrote into the data dir."""
    meta = rdir / DATA_DIR / META_PROPERTIES
    try:
        text = meta.read_text()
    except OSError:
        raise KafkaError(f"no formatted storage ({meta} missing): run start first") from None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id" and value.strip():
            return value.strip()
    raise KafkaError(f"{meta} has no cluster.id")


def _check_rebindable(ports: tuple[int, int, int]) -> None:
    """Fail clearly if another process now listens on one of the broker's ports.

    Binds as the broker's own listeners do, with SO_REUSEADDR (which the JVM sets on every
    server socket): the killed broker's connections left in TIME_WAIT on these ports do not
    block that, a listening socket does.
    """
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                raise KafkaError(f"port {port} on 127.0.0.1 is taken: {exc}") from exc


def restart(run_dir: str | os.PathLike[str] | None = None, timeout: float = 90.0) -> State:
    """Start the broker of run_dir again (after :func:`kill` or :func:`stop`) from its
    existing properties and data dir: same cluster id, same ports, topics and committed
    offsets kept. Returns the state like :func:`start`. A ready broker that still runs is
    reused; one that runs but is not ready is killed first."""
    cdir = fetch()
    rdir = _resolve_run_dir(run_dir)
    if not rdir.is_dir():
        raise KafkaError(f"no broker run dir {rdir}: run start first")
    with _locked(rdir):
        t0 = time.monotonic()
        state = _read_state(rdir)
        if state is not None and _is_our_broker(int(state["pid"]), rdir):
            if _ready(state, rdir):
                _log(f"broker pid {state['pid']} still runs and is ready; nothing to restart")
                return state
            _log(f"broker pid {state['pid']} runs but is not ready; killing it first")
            _kill_unlocked(rdir)
        ports = _listener_ports(rdir / PROPERTIES_FILE)
        cluster_id = _cluster_id(rdir)
        _check_rebindable(ports)
        # A failed restart leaves the state file naming the dead pid, as after kill().
        return _launch(cdir, rdir, ports, cluster_id, t0, timeout)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the broker jars with Maven (once)")
    p_start = sub.add_parser("start", help="start (or reuse) the broker; prints bootstrap")
    p_start.add_argument("--port", type=int, default=0, help="broker port (0 = free port)")
    p_start.add_argument("--timeout", type=float, default=90.0, help="readiness timeout, s")
    p_start.add_argument(
        "--sasl-port", type=int, default=0, help="SASL_PLAINTEXT listener port (0 = free port)"
    )
    p_stop = sub.add_parser("stop", help="stop the broker (exit 0 if none runs)")
    p_status = sub.add_parser("status", help="print bootstrap, exit 0 if ready, else 1")
    p_kill = sub.add_parser(
        "kill", help="SIGKILL the broker, keeping its data for restart (exit 0 if none runs)"
    )
    p_restart = sub.add_parser(
        "restart", help="start the killed/stopped broker again, same data and ports"
    )
    p_restart.add_argument("--timeout", type=float, default=90.0, help="readiness timeout, s")
    for p in (p_start, p_stop, p_status, p_kill, p_restart):
        p.add_argument("--dir", dest="run_dir", default=None, help="broker run dir")
    for p in (p_start, p_status, p_restart):
        p.add_argument(
            "--sasl",
            action="store_true",
            help="print the SASL_PLAINTEXT listener's address instead of the PLAINTEXT one",
        )
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            fetch()
        elif args.command == "start":
            state = start(
                args.run_dir, port=args.port, timeout=args.timeout, sasl_port=args.sasl_port
            )
            print(state["sasl_bootstrap" if args.sasl else "bootstrap"])
        elif args.command == "stop":
            stop(args.run_dir)
        elif args.command == "kill":
            kill(args.run_dir)
        elif args.command == "restart":
            state = restart(args.run_dir, timeout=args.timeout)
            print(state["sasl_bootstrap" if args.sasl else "bootstrap"])
        elif args.command == "status":
            state = status(args.run_dir)
            if state is None:
                _log("no ready broker")
                return 1
            print(state["sasl_bootstrap" if args.sasl else "bootstrap"])
    except KafkaError as exc:
        _log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
