"""Short random values for the write path, read from the OS a page at a time.

Each event a service stores takes several short random values: a 96-bit AES-GCM nonce per
personal field it seals, and 80 bits of a UUIDv7 for its id. ``os.urandom`` is a getrandom(2)
call per value, and CPython lets go of the GIL around it: in a service whose other threads
(the gRPC loop, the group commit) want the GIL, every call hands it over and waits to get it
back, a pair of thread switches per value. During BatchCreateProfiles py-spy found the profiles
service's threads in those calls in a quarter of its samples (waits for the GIL included). So
the values are cut from 4 KiB read at once: one call for about 28 events.

They are the same CSPRNG's bytes, each handed out once: each thread cuts from a page of its
own, and a fork forgets the child's pages, so a forked worker never repeats its parent's
nonces. Key material is not taken from here (``generate_keys``): nothing not yet used as a key
is kept in memory.

No kept library does this (``secrets`` and ``random.SystemRandom`` call ``os.urandom`` per
value), hence these few lines.
"""

from __future__ import annotations

import os
import threading

PAGE_BYTES = 4096

# A page per thread: no lock to wait on (a lock held across the read of a page, which lets go
# of the GIL, made the other threads queue behind it).
_local = threading.local()


def _forget() -> None:
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget)


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS's CSPRNG; a value longer than a quarter page is read on its own."""
    if n > PAGE_BYTES // 4:
        return os.urandom(n)
    mine = _local
    page, used = getattr(mine, "page", b""), getattr(mine, "used", 0)
    if used + n > len(page):
        page, used = os.urandom(PAGE_BYTES), 0
        mine.page = page
    mine.used = used + n
    return page[used:used + n]


def random_bits(k: int) -> int:
    """A ``k``-bit non-negative int (``secrets.randbits``'s contract)."""
    return int.from_bytes(random_bytes((k + 7) // 8), "big") >> (-k % 8)


def generate_keys(count: int, key_bytes: int) -> list[bytes]:
    """``count`` new keys in one read of the OS's CSPRNG (a bulk import makes hundreds at once)."""
    raw = os.urandom(count * key_bytes) if count else b""
    return [raw[i:i + key_bytes] for i in range(0, len(raw), key_bytes)]
