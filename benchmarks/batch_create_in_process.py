"""The profiles service's BatchCreateProfiles in one process, without gRPC, Kafka or
Elasticsearch: CPU per profile and thread switches, to compare two checkouts in seconds where
the whole write path (``benchmarks.write_path``) varies by more than a small change.

    PYTHONPATH=<checkout>/libs:<checkout> .venv/bin/python benchmarks/batch_create_in_process.py \\
        --batches 10 --managers earlier --label <checkout>

(run as a file, so that a checkout without it can be measured: the services and the library
come from the checkout on PYTHONPATH).

Four threads (as the service's gRPC workers) each save ``--batches`` batches of 500 new profiles
through one application into a SQLite store in a temporary folder, every profile with a manager: the first
of its batch (``--managers same``, known within the batch), or one of the 50 first of the
thread's previous batch (``earlier``, created by an earlier call). It prints the process's CPU
ms per profile, the wall time and the context switches (voluntary and not), which count the
times a thread let go of the GIL and waited to get it back. Measure on an idle machine: with the
cores busy elsewhere the threads hand the GIL over less often, and the difference shrinks.
Never part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time

THREADS = 4
BATCH_SIZE = 500


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.batch_create_in_process", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=10, help="batches of 500 per thread")
    p.add_argument("--managers", choices=("same", "earlier"), default="same", help="where each profile's manager was created")
    p.add_argument("--label", default="", help="printed first, to tell checkouts apart")
    args = p.parse_args(argv)
    os.environ.update(WC_DATA_DIR=tempfile.mkdtemp(prefix="wc-batch-bench-"), WC_STORE="sqlite")

    from services.profiles.application import NewProfile, ProfilesApplication
    from watercooler import config
    from watercooler.auth import Principal
    from watercooler.eventstore import CommandContext

    ctx = CommandContext(principal=Principal(subject="hr-feed", kind="service"))
    app = ProfilesApplication(config.load())
    app.create_profile(ctx, "m0", {"display_name": "Head"}, "")

    def manager(thread: int, batch: int, n: int) -> str:
        if args.managers == "earlier" and batch:
            return f"p{thread}-{batch - 1}-{n % 50}"
        return "m0" if n == 0 else f"p{thread}-{batch}-0"

    def fields(thread: int, batch: int, n: int) -> dict:
        return {"display_name": f"Person {thread} {batch} {n}", "job_title": "Engineer", "department": "Research", "country": "FR",
                "bio": "Works on search and streams. " * 3, "manager_id": manager(thread, batch, n), "expertise": ["kafka", "search"]}

    def work(thread: int) -> None:
        for batch in range(args.batches):
            app.batch_create_profiles([NewProfile(ctx, f"p{thread}-{batch}-{n}", fields(thread, batch, n), "") for n in range(BATCH_SIZE)])

    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - began
    app.close()
    profiles = THREADS * args.batches * BATCH_SIZE
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    switches = (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw)
    print(f"{args.label} profiles={profiles} cpu_ms_per_profile={1000 * cpu / profiles:.4f} wall_s={wall:.1f} context_switches={switches}")


if __name__ == "__main__":
    main(sys.argv[1:])
