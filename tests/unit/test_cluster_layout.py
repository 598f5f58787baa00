"""The cluster topology's engine settings (tools.infra.cluster) and client balancing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tools.infra import cluster, elasticsearch, kafka, seaweedfs
from watercooler.client import service_config
from watercooler.config import Settings


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_each_broker_is_a_voter_of_one_quorum_holding_three_copies(tmp_path: Path) -> None:
    layout = cluster.ClusterLayout(tmp_path, base=30000)
    rendered = [props(kafka.render_kafka_properties(cluster.broker_settings(Settings(), layout, n), tmp_path, cluster.quorum(layout, n))) for n in (1, 2, 3)]
    assert [r["node.id"] for r in rendered] == ["1", "2", "3"]
    assert {r["controller.quorum.voters"] for r in rendered} == {"1@127.0.0.1:39192,2@127.0.0.1:39193,3@127.0.0.1:39194"}
    assert [r["listeners"] for r in rendered][0] == "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39192"
    for r in rendered:
        assert (r["default.replication.factor"], r["min.insync.replicas"], r["offsets.topic.replication.factor"], r["transaction.state.log.min.isr"]) == ("3", "2", "3", "2")


def test_the_single_broker_is_unchanged(tmp_path: Path) -> None:
    single = props(kafka.render_kafka_properties(Settings(), tmp_path))
    assert (single["node.id"], single["default.replication.factor"], single["min.insync.replicas"]) == ("1", "1", "1")


def yml(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_the_search_nodes_find_each_other_and_form_the_cluster_only_once(tmp_path: Path) -> None:
    layout = cluster.ClusterLayout(tmp_path, base=30000)
    first = yml(elasticsearch.render_es_yml(cluster.es_settings(Settings(), layout, 2), tmp_path, tmp_path, cluster.es_node(layout, 2)))
    assert first["node.name"] == "es-2" and first["http.port"] == "39201" and "discovery.type" not in first
    assert json.loads(first["discovery.seed_hosts"]) == ["127.0.0.1:39300", "127.0.0.1:39301"]
    assert json.loads(first["cluster.initial_master_nodes"]) == ["es-1", "es-2"]
    (tmp_path / "_state").mkdir()  # formed: bootstrapping again could split it
    again = yml(elasticsearch.render_es_yml(cluster.es_settings(Settings(), layout, 2), tmp_path, tmp_path, cluster.es_node(layout, 2)))
    assert "cluster.initial_master_nodes" not in again
    assert yml(elasticsearch.render_es_yml(Settings(), tmp_path, tmp_path))["discovery.type"] == "single-node"


def test_a_target_of_several_replicas_is_balanced_round_robin() -> None:
    several = json.loads(service_config("ipv4:127.0.0.1:16051,127.0.0.1:16151"))
    assert several["loadBalancingConfig"] == [{"round_robin": {}}]
    assert "loadBalancingConfig" not in json.loads(service_config("127.0.0.1:50051"))
    assert several["methodConfig"] == json.loads(service_config("127.0.0.1:50051"))["methodConfig"]


def seaweedfs_ports(settings: Settings) -> set[int]:
    """SeaweedFS's S3, master, volume server and filer ports, and their gRPC ports."""
    return set(seaweedfs.ports(settings).values())


def test_seaweedfs_listens_on_eight_ports_of_its_own_from_WC_S3_PORT() -> None:
    """Its gRPC ports were SeaweedFS's default, each HTTP port + 10,000: a store for a bench on
    19333 took 29333-29336, the test servers' S3 and neighbours, and make test failed to start."""
    settings = replace(Settings(), s3_port=19333)
    assert seaweedfs_ports(settings) == set(range(19333, 19341))
    listed = " ".join(seaweedfs.command(settings, Path("weed"), Path("/d/data"), Path("/d/s3.json")))
    for flag, port in (("-master.port.grpc", 19338), ("-volume.port.grpc", 19339), ("-filer.port.grpc", 19340), ("-s3.port.grpc", 19337)):
        assert f"{flag}={port}" in listed


def test_no_port_of_the_cluster_is_one_of_the_single_node_or_test_servers_or_ephemeral(tmp_path: Path) -> None:
    make_run = {9092, 9093, 9200, 9300, 15432, *range(50051, 50055), *seaweedfs_ports(replace(Settings(), s3_port=8333))}
    make_test = {29092, 29093, 29200, 29300, 25432, *seaweedfs_ports(replace(Settings(), s3_port=29333))}
    for base in (11000, 13000):  # the default, the tests'
        layout = cluster.ClusterLayout(tmp_path, base=base)
        ports = [layout.broker_port(n) for n in range(1, cluster.BROKERS + 1)] + [layout.controller_port(n) for n in range(1, cluster.BROKERS + 1)]
        ports += [layout.es_port(n) for n in range(1, cluster.ES_NODES + 1)] + [layout.es_transport_port(n) for n in range(1, cluster.ES_NODES + 1)]
        ports += [layout.postgres_port, *sorted(seaweedfs_ports(cluster.s3_settings(Settings(), layout)))]
        ports += [layout.service_port(service, replica) for service in range(4) for replica in range(2)]
        ports += [layout.pod_port(pod, kind) for pod in range(40) for kind in (0, 1)]
        assert len(set(ports)) == len(ports), base
        assert not set(ports) & (make_run | make_test), (base, sorted(set(ports) & (make_run | make_test)))
        assert max(ports) < 32768, base  # the kernel's ephemeral ports start there
