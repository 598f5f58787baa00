"""The platform supervisor (tools/runner.py): a crashed process comes back after a
growing back-off; one that keeps crashing makes the platform give up."""

from __future__ import annotations

import json
import sys
import time

from tools.runner import Platform, ProcessSpec, RestartPolicy
from watercooler import config


def test_back_off_doubles_up_to_a_cap_and_gives_up_at_five_crashes_in_a_minute():
    policy = RestartPolicy()
    assert (policy.max_crashes, policy.window_seconds) == (5, 60.0)
    assert [policy.delay_after([0.0] * n, 0.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, None]
    assert RestartPolicy(max_crashes=20).delay_after([0.0] * 10, 0.0) == 30.0  # capped


def test_crashes_outside_the_window_are_forgiven():
    policy = RestartPolicy()
    old = [0.0, 1.0, 2.0, 3.0]  # four crashes a while ago
    assert policy.delay_after([*old, 100.0], 100.0) == 1.0  # a fifth, 97 s later: back to the first delay
    assert policy.delay_after([*old, 30.0], 30.0) is None  # a fifth within the minute: give up


def platform_of(tmp_path, argv: list[str], policy: RestartPolicy) -> Platform:
    running = Platform(config.load(), log_dir=tmp_path, policy=policy)
    running.specs = {"worker": ProcessSpec("worker", argv)}
    return running


def supervisor_lines(tmp_path) -> list[dict]:
    path = tmp_path / "platform.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_crashed_process_is_restarted_with_a_log_line_and_one_stopped_by_hand_is_not(tmp_path):
    # Crashes on its first run only (a marker file tells the second run apart).
    marker = tmp_path / "ran-once"
    script = f"import pathlib, sys, time\np = pathlib.Path({str(marker)!r})\nif not p.exists():\n    p.touch(); sys.exit(3)\ntime.sleep(600)"
    running = platform_of(tmp_path, [sys.executable, "-c", script], RestartPolicy(first_delay=0.05))
    running.start_process("worker")
    try:
        deadline = time.monotonic() + 30
        while running.restarts.get("worker", 0) < 1 or running.procs["worker"].poll() is not None:
            assert time.monotonic() < deadline, "the crashed worker was not restarted"
            time.sleep(0.05)
        messages = [line["msg"] for line in supervisor_lines(tmp_path)]
        assert any("worker exited with code 3; restarting in" in m for m in messages), messages
        assert any(m.startswith("worker restarted (pid ") for m in messages), messages
        assert not running.gave_up.is_set()
        # Stopped by hand (a test's fault injection): it stays down until restarted by hand.
        running.kill("worker")
        time.sleep(0.5)
        assert running.procs["worker"].poll() is not None and running.restarts["worker"] == 1
    finally:
        running.stop(timeout=5)


def test_a_process_that_keeps_crashing_makes_the_platform_give_up(tmp_path):
    running = platform_of(tmp_path, [sys.executable, "-c", "raise SystemExit(7)"], RestartPolicy(first_delay=0.01, max_delay=0.05))
    running.start_process("worker")
    try:
        assert running.gave_up.wait(60), "never gave up"
        assert running.gave_up_on == "worker"
        assert running.restarts["worker"] == 4  # five crashes: the first run and four restarts
        assert "giving up" in supervisor_lines(tmp_path)[-1]["msg"]
    finally:
        running.stop(timeout=5)
