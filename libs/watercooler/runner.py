"""Starts and stops the platform's own processes: every service, the relays and the
processors.  Used by `make run` (logs to the terminal) and by the test suite
(logs to files, and faults injected by killing processes)."""

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

from .client import wait_serving
from .config import EVENT_SOURCED_SERVICES, SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    # The gRPC service whose health check says this process is ready, if any.
    serves: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def has_application(service: str) -> bool:
    return importlib.util.find_spec(f"services.{service}.application") is not None


def platform_processes() -> list[ProcessSpec]:
    python = sys.executable
    specs = [ProcessSpec(service, [python, "-m", f"services.{service}"], serves=service) for service in SERVICES]
    for service in EVENT_SOURCED_SERVICES:
        if has_application(service):
            specs.append(ProcessSpec(f"relay-{service}", [python, "-m", "watercooler.cli", "relay", service]))
    specs.append(ProcessSpec("projections", [python, "-m", "services.search.projections"]))
    stats = ROOT / "services" / "search" / "stats"
    if (stats / "__main__.py").exists():
        specs.append(ProcessSpec("stats", [python, "-m", "services.search.stats"]))
    return specs


def _dying_with_parent(argv: list[str]) -> list[str]:
    """Should the supervisor die without stopping its children, they die too (no orphans
    holding ports). util-linux's setpriv sets the parent-death signal before exec; a
    preexec_fn could do the same but is unsafe in a process with threads, as ours are.
    SIGKILL: everything is crash-safe by design, and a wedged worker could ignore less."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


_COLOURS = ["36", "32", "35", "33", "34", "96", "92", "95", "93", "94"]


class Platform:
    def __init__(self, settings: Settings, env: dict[str, str] | None = None, log_dir: Path | None = None, echo: bool = False):
        self.settings = settings
        self.env = {**os.environ, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "libs"), str(ROOT), self.env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_dir = log_dir
        self.echo = echo
        self.specs = {spec.name: spec for spec in platform_processes()}
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_files: dict[str, IO[str]] = {}

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
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops children in order
        )
        self.procs[name] = proc
        threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()
        return proc

    def wait_ready(self, timeout: float = 120.0) -> None:
        for name, spec in self.specs.items():
            if spec.serves:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see its log")
                wait_serving(self.settings.grpc_address(spec.serves), timeout)

    def stop(self, timeout: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
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
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def restart(self, name: str) -> None:
        self.start_process(name)
        spec = self.specs[name]
        if spec.serves:
            wait_serving(self.settings.grpc_address(spec.serves), 60)

    def exited(self) -> dict[str, int]:
        return {name: proc.returncode for name, proc in self.procs.items() if proc.poll() is not None}

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
