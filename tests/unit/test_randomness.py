"""Random values cut from pages of the OS's CSPRNG (watercooler.randomness): never one handed
out twice, in threads or across a fork, and of the size asked."""

from __future__ import annotations

import os
import threading

from watercooler import personaldata, randomness
from watercooler.eventstore import uuid7


def test_values_have_the_size_asked_and_are_never_repeated_across_pages():
    values = [randomness.random_bytes(12) for _ in range(3 * randomness.PAGE_BYTES // 12)]
    assert {len(v) for v in values} == {12}
    assert len(set(values)) == len(values)
    assert len(randomness.random_bytes(randomness.PAGE_BYTES)) == randomness.PAGE_BYTES  # longer than a slice: read alone


def test_random_bits_stay_within_the_bits_asked():
    assert all(0 <= randomness.random_bits(5) < 32 for _ in range(2000))
    assert max(randomness.random_bits(80) for _ in range(200)).bit_length() > 72  # the high bits are used too


def test_threads_taking_at_once_never_share_a_value():
    taken: list[list[bytes]] = [[] for _ in range(8)]

    def take(mine: list[bytes]) -> None:
        for _ in range(2000):
            mine.append(randomness.random_bytes(12))

    threads = [threading.Thread(target=take, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [v for mine in taken for v in mine]
    assert len(set(every)) == len(every) == 16_000


def test_a_forked_child_never_repeats_its_parents_next_values():
    randomness.random_bytes(12)  # a page read and partly used before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next nonce, to the parent
        os.close(read)
        os.write(write, randomness.random_bytes(12) + uuid7().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1024)
    os.close(read)
    os.waitpid(pid, 0)
    assert randomness.random_bytes(12) != child[:12]
    assert len(child) == 12 + 36


def test_keys_made_at_once_are_distinct_and_of_the_key_size():
    keys = personaldata.generate_keys(500)
    assert len(keys) == 500 == len(set(keys))
    assert {len(k) for k in keys} == {personaldata.KEY_BYTES}
    assert personaldata.generate_keys(0) == []
    assert personaldata.unseal(personaldata.seal("e1", keys[0], "body", "x"), "body", {"e1": keys[0]}) == "x"
