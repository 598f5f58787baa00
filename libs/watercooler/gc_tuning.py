"""The cyclic garbage collector, tuned for long-running services.

Why: profiled under a closed loop of CreateProfile calls (py-spy --native, 200 Hz, 20 s once
42,000 writes had filled the aggregate cache), ``gc_collect_main`` was about 60 % of the
profiles service's samples outside waits (after: under 1 %; the CPU per write that moved is in
docs/benchmarks/write-path.md, together with the other changes of that run). Python's defaults
(700 container allocations per young collection) suit short scripts: in a server with
dozens of requests in flight, each young collection finds those requests' objects still
alive and promotes them, so the old generation keeps growing and full collections, which walk
every object (the modules, the aggregate cache), run again and again.

What we do, once a process has finished starting:
- ``gc.freeze()``: what start-up created (modules, protobuf descriptors, the gRPC runtime) is
  moved out of the collector's sight; it lives as long as the process anyway.
- a young generation of ``YOUNG_THRESHOLD`` allocations: a request's objects are usually
  freed by reference counting before a collection sees them, so far fewer survive into the
  older generations. Cyclic garbage is still collected, only in larger, rarer steps: at
  most a few tens of thousands of young objects wait for it (a few MiB).
"""

from __future__ import annotations

import gc
import os

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_service() -> None:
    """Freeze what start-up allocated and widen the young generation (WC_GC_TUNING=0: Python's
    defaults, to measure against)."""
    if os.environ.get("WC_GC_TUNING", "1") == "0":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
