"""Moves jams through their phases at the scheduled times.

Runs inside the jams service.  Each tick records every scheduled change that is due
(with its scheduled time, so a restart that missed one records it late but truthfully)
and publishes the results of jams closed longer than the grace period.  Commands never
depend on the tick: they check the phase the schedule says applies now
(``Jam.phase_at``), so a slow or stopped scheduler cannot let a late vote in.  Several
replicas may tick at once: the jam's version lets one change win; the others retry.
"""

from __future__ import annotations

import asyncio
import logging
import os

from watercooler.rpc import in_thread

from .application import JamsApplication

log = logging.getLogger(__name__)


def interval_seconds() -> float:
    return float(os.environ.get("WC_JAMS_SCHEDULER_INTERVAL", "0.5"))


async def run_scheduler(app: JamsApplication, stopping: asyncio.Event) -> None:
    interval = interval_seconds()
    while not stopping.is_set():
        try:
            done = await in_thread(app.run_due_transitions)
            for jam_id, phase in done:
                log.info("jam phase changed on schedule", extra={"jam": jam_id, "phase": phase})
        except Exception:  # the store briefly unavailable: try again next tick
            log.exception("scheduler tick failed")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval)
        except TimeoutError:
            pass
