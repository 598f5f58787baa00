"""The `watercooler` command line against the running platform."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from watercooler.auth import TokenVerifier

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "WC_LOG_FORMAT": "text"}
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], env=env, capture_output=True, text=True, timeout=300)


def test_token_issues_a_verifiable_token(platform):
    result = cli("token", "g-42", "--kind", "guest", "--jam", "jam-1")
    assert result.returncode == 0, result.stderr
    principal = TokenVerifier(platform.settings).verify(f"Bearer {result.stdout.strip()}")
    assert (principal.subject, principal.kind, principal.jams) == ("g-42", "guest", ("jam-1",))


def test_status_shows_services_and_projections(platform):
    result = cli("status")
    assert result.returncode == 0, result.stderr
    for service in ("profiles", "posts", "jams", "search"):
        assert service in result.stdout
    assert result.stdout.count("SERVING") == 4
    assert platform.alias("people") in result.stdout


def test_reindex_rebuilds_and_switches_the_alias(platform):
    before = set(platform.es.indices.get_alias(name=platform.alias("people")).body)
    result = cli("reindex", "people")
    assert result.returncode == 0, result.stderr
    assert "rebuilt people" in result.stdout
    after = set(platform.es.indices.get_alias(name=platform.alias("people")).body)
    assert after and after.isdisjoint(before)
    unknown = cli("reindex", "no-such-projection")
    assert unknown.returncode != 0 and "unknown read model" in (unknown.stdout + unknown.stderr)
    # Several names: each rebuilt in turn; one unknown among them and none is (checked first).
    mixed = cli("reindex", "people", "no-such-projection")
    assert mixed.returncode != 0 and "no-such-projection" in (mixed.stdout + mixed.stderr)
    assert set(platform.es.indices.get_alias(name=platform.alias("people")).body) == after
    both = cli("reindex", "people", "communities")
    assert both.returncode == 0, both.stderr
    assert "rebuilt people" in both.stdout and "rebuilt communities" in both.stdout
    assert set(platform.es.indices.get_alias(name=platform.alias("people")).body).isdisjoint(after)


def test_dlq_lists_dead_letters(platform):
    from kafka import KafkaProducer

    from tests.conftest import eventually

    producer = KafkaProducer(bootstrap_servers=platform.settings.kafka_bootstrap, acks="all")
    producer.send(platform.topic("profiles"), key=b"cli-poison", value=b"garbage for the dlq").get(30)
    producer.close()

    def listed():
        result = cli("dlq", "--limit", "500")
        return result.returncode == 0 and "not an EventEnvelope" in result.stdout

    eventually(listed, timeout=90, message="dead letter listed by the CLI")


def test_an_index_of_an_older_schema_version_is_found_and_rebuilt(platform):
    """`make run` on data kept from an older version rebuilds the projections whose documents
    changed shape (run.py): the check reads the schema version stored in the index's _meta."""
    from services.search.readmodels.projections import BookmarksProjection
    from tools.reindex import rebuild_with_progress, stale_projections

    alias = platform.alias(BookmarksProjection.name)
    assert BookmarksProjection not in stale_projections(platform.settings)
    older = BookmarksProjection.schema_version - 1
    platform.es.indices.put_mapping(index=alias, meta={"projection": BookmarksProjection.name, "schema_version": older})
    assert BookmarksProjection in stale_projections(platform.settings)
    before = set(platform.es.indices.get_alias(name=alias).body)
    rebuild_with_progress(platform.settings, BookmarksProjection)
    assert set(platform.es.indices.get_alias(name=alias).body).isdisjoint(before), "the alias points at a new index"
    assert BookmarksProjection not in stale_projections(platform.settings)
