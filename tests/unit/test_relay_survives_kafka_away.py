"""A relay whose Kafka is away when it starts keeps retrying instead of ending its thread.

It once checked its topic outside the retry loop: a broker dying at that moment (seen in the
three-broker fault test) ended the thread and the service's events were never published."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

from services.profiles.application import ProfilesApplication
from watercooler import config
from watercooler.relay import Relay


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_relay_keeps_retrying_while_kafka_is_unreachable(tmp_path):
    settings = dataclasses.replace(config.load(), kafka_bootstrap=f"127.0.0.1:{closed_port()}", data_dir=tmp_path, namespace="relayaway")
    relay = Relay(ProfilesApplication(settings), settings)
    relay.send_timeout = 3.0  # each attempt gives up after 3 s instead of 15
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    time.sleep(relay.send_timeout * 2 + 1)  # the first topic check has failed by then
    try:
        assert thread.is_alive(), "the relay thread ended while Kafka was away"
    finally:
        relay.stop()
        thread.join(30)
    assert not thread.is_alive()
