"""Starts and stops the platform's own processes: every service, the relays and the
processors.  Used by `make run` (logs to the terminal) and by the test suite
(logs to files, and faults injected by killing processes).

A process that exits on its own is restarted after a back-off, with a log line, as
compose's ``restart: on-failure`` or a Kubernetes pod would (``RestartPolicy``: 1 s, 2 s,
4 s, ... up to 30 s); only ``RestartPolicy.max_crashes`` crashes of one process within
``RestartPolicy.window_seconds`` (5 in 60 s) make the platform give up and stop
(``Platform.gave_up``).  Every process is crash-safe by design (offsets committed after
their effects, idempotent writes), so a restart loses nothing.

Hand-written rather than supervisord or circus (both in the package index, neither in our
environment): they run as daemons of their own, configured by files and driven over their
own sockets, while the tests need the processes in this one object, to kill and restart by
name with their logs in the test's namespace; the supervision itself is the few lines of
``RestartPolicy`` and ``Platform._watch``."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from watercooler.client import wait_serving
from watercooler.config import EVENT_SOURCED_SERVICES, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    # The gRPC service whose health check says this process is ready, if any.
    serves: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Where its health is checked, when not the service's configured address (one replica of several).
    address: str | None = None
    cwd: Path | None = None

    def health_address(self, settings: Settings) -> str:
        assert self.serves is not None
        return self.address or settings.grpc_address(self.serves)


def has_application(service: str) -> bool:
    return importlib.util.find_spec(f"services.{service}.application") is not None


def platform_processes() -> list[ProcessSpec]:
    python = sys.executable
    specs = [ProcessSpec(service, [python, "-m", f"services.{service}"], serves=service) for service in SERVICES]
    for service in EVENT_SOURCED_SERVICES:
        if has_application(service):
            specs.append(ProcessSpec(f"relay-{service}", [python, "-m", f"services.{service}.relay"]))
    specs.append(ProcessSpec("projections", [python, "-m", "services.search.readmodels.projections"]))
    specs.append(ProcessSpec("thumbnails", [python, "-m", "services.posts.thumbnails"]))
    stats = ROOT / "services" / "search" / "readmodels" / "counters"
    if (stats / "__main__.py").exists():
        specs.append(ProcessSpec("stats", [python, "-m", "services.search.readmodels.counters"]))
    return specs


def _dying_with_parent(argv: list[str]) -> list[str]:
    """Should the supervisor die without stopping its children, they die too (no orphans
    holding ports). util-linux's setpriv sets the parent-death signal before exec; a
    preexec_fn could do the same but is unsafe in a process with threads, as ours are.
    SIGKILL: everything is crash-safe by design, and a wedged worker could ignore less."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


@dataclass
class RestartPolicy:
    """When to restart a crashed process, and when to give up on it (and the platform)."""

    max_crashes: int = 5
    window_seconds: float = 60.0
    first_delay: float = 1.0
    max_delay: float = 30.0

    def delay_after(self, crashes: list[float], now: float) -> float | None:
        """Seconds to wait before restarting, given the times of this process's crashes (the
        latest included), or None to give up: ``max_crashes`` of them within the window.  The
        delay doubles with each crash in the window, so a process that keeps failing on
        something outside it (a server down) does not spin."""
        recent = [t for t in crashes if now - t <= self.window_seconds]
        if len(recent) >= self.max_crashes:
            return None
        return min(self.max_delay, self.first_delay * 2 ** (max(1, len(recent)) - 1))


_COLOURS = ["36", "32", "35", "33", "34", "96", "92", "95", "93", "94"]


class Platform:
    def __init__(
        self,
        settings: Settings,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        echo: bool = False,
        policy: RestartPolicy | None = None,
        specs: list[ProcessSpec] | None = None,
    ):
        self.settings = settings
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "libs"), str(ROOT), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_dir = log_dir
        self.echo = echo
        self.specs = {spec.name: spec for spec in (specs if specs is not None else platform_processes())}
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_files: dict[str, IO[str]] = {}
        self.policy = policy or RestartPolicy()
        # Crash times by process, restarts done, and the processes stopped on purpose (not restarted).
        self.crashes: dict[str, list[float]] = {}
        self.restarts: dict[str, int] = {}
        self._held: set[str] = set()
        self._stopping = False
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._due: list[tuple[float, str, subprocess.Popen]] = []  # (when, name, the crashed process)
        # Set when a process crashed too often: the caller (`make run`) then stops everything.
        self.gave_up = threading.Event()
        self.gave_up_on: str | None = None
        threading.Thread(target=self._supervise, daemon=True, name="platform-supervisor").start()

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        for name in self.specs:
            self.start_process(name)
        self.wait_ready(timeout)

    def start_process(self, name: str) -> subprocess.Popen:
        spec = self.specs[name]
        env = {**self.env, **spec.env}
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = self._log_files.get(name) or open(self.log_dir / f"{name}.log", "a", encoding="utf-8")  # noqa: SIM115
            self._log_files[name] = log_file
        proc = subprocess.Popen(
            _dying_with_parent(spec.argv),
            cwd=spec.cwd or ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
        )
        with self._lock:
            self.procs[name] = proc
            self._held.discard(name)
        threading.Thread(target=self._watch, args=(name, proc), daemon=True).start()
        return proc

    def wait_ready(self, timeout: float = 120.0) -> None:
        for name, spec in self.specs.items():
            if spec.serves:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
                wait_serving(spec.health_address(self.settings), timeout)

    def stop(self, timeout: float = 20.0) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
            procs = list(self.procs.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log_file in self._log_files.values():
            log_file.close()
        self._log_files.clear()

    # --- faults ----------------------------------------------------------------------------------
    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Stops a process by hand: it stays down (no automatic restart) until ``restart``.
        (A crash to be restarted by the supervisor is a signal sent to ``procs[name].pid``.)"""
        with self._lock:
            self._held.add(name)
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def restart(self, name: str) -> None:
        with self._lock:
            if self.procs[name].poll() is None:  # the supervisor brought it back already
                self._held.discard(name)
            else:
                self.start_process(name)
        spec = self.specs[name]
        if spec.serves:
            wait_serving(spec.health_address(self.settings), 60)

    def exited(self) -> dict[str, int]:
        return {name: proc.returncode for name, proc in self.procs.items() if proc.poll() is not None}

    # --- supervision -----------------------------------------------------------------------------
    def _watch(self, name: str, proc: subprocess.Popen) -> None:
        self._pump(name, proc)
        code = proc.wait()
        with self._lock:
            if self._stopping or name in self._held or self.procs.get(name) is not proc:
                return
            now = time.monotonic()
            crashes = self.crashes.setdefault(name, [])
            crashes.append(now)
            delay = self.policy.delay_after(crashes, now)
            recent = sum(1 for t in crashes if now - t <= self.policy.window_seconds)
            if delay is None:
                self.gave_up_on = name
                self._note(
                    "error", f"{name} exited with code {code}, {recent} crashes in {self.policy.window_seconds:.0f}s; giving up, stopping the platform", process=name, code=code
                )
                self.gave_up.set()
                return
            self._note("warning", f"{name} exited with code {code}; restarting in {delay:.0f}s ({recent} of {self.policy.max_crashes} crashes allowed in {self.policy.window_seconds:.0f}s)", process=name, code=code)
            self._due.append((now + delay, name, proc))
            self._wake.notify()

    def _supervise(self) -> None:
        """Restarts crashed processes when their back-off is over.  One long-lived thread does
        every restart: the parent-death signal (``_dying_with_parent``) fires when the *thread*
        that spawned a child exits, so a short-lived timer thread would kill what it started."""
        with self._wake:
            while not self._stopping:
                now = time.monotonic()
                ready = [entry for entry in self._due if entry[0] <= now]
                self._due = [entry for entry in self._due if entry[0] > now]
                for _, name, crashed in ready:
                    if name in self._held or self.procs.get(name) is not crashed:
                        continue  # stopped or restarted by hand meanwhile
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                    proc = self.start_process(name)
                    self._note("info", f"{name} restarted (pid {proc.pid})", process=name, pid=proc.pid)
                next_due = min((entry[0] for entry in self._due), default=now + 1.0)
                self._wake.wait(max(0.01, next_due - time.monotonic()))

    def _note(self, level: str, message: str, **fields: object) -> None:
        """A supervisor log line: in platform.log beside the processes' logs, and on the terminal."""
        line = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level, "component": "platform", "msg": message, **fields})
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with open(self.log_dir / "platform.log", "a", encoding="utf-8") as log_file:
                log_file.write(line + "\n")
        if self.echo:
            sys.stdout.write(f"\033[1m{'platform':>13}\033[0m {readable(line)}")

    # --- logs ----------------------------------------------------------------------------------
    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        colour = _COLOURS[list(self.specs).index(name) % len(_COLOURS)]
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file = self._log_files.get(name)
            if log_file is not None:
                try:
                    log_file.write(line)
                    log_file.flush()
                except ValueError:  # closed during shutdown
                    pass
            if self.echo:
                sys.stdout.write(f"\033[{colour}m{name:>13}\033[0m {readable(line)}")


def readable(line: str) -> str:
    """A JSON log line as one readable line: `level msg key=value ...`."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    skip = {"ts", "level", "component", "logger", "msg"}
    extras = " ".join(f"{k}={v}" for k, v in entry.items() if k not in skip and k != "exc")
    text = f"{entry.get('level', ''):<7} {entry.get('msg', '')} {extras}".rstrip() + "\n"
    if "exc" in entry:
        text += entry["exc"] + "\n"
    return text
