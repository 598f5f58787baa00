"""Whose CPU the bench reads: the Kafka and Elasticsearch servers behind the addresses in use."""

from __future__ import annotations

import dataclasses

from benchmarks.harness import measured_settings
from watercooler import config


def test_the_servers_measured_are_those_at_the_addresses_given_not_the_default_ports():
    # External servers named by address alone: the port settings still hold their defaults.
    given = dataclasses.replace(config.load(), kafka_bootstrap="127.0.0.1:19092,127.0.0.1:19094", es_url="http://127.0.0.1:19200", kafka_port=39092, es_port=39200)
    measured = measured_settings(given)
    assert (measured.kafka_port, measured.es_port) == (19092, 19200)
    assert (measured.kafka_bootstrap, measured.es_url) == (given.kafka_bootstrap, given.es_url)


def test_an_address_without_a_port_is_the_default_port():
    given = dataclasses.replace(config.load(), kafka_bootstrap="kafka:9092", es_url="http://elasticsearch")
    assert measured_settings(given).es_port == 9200
