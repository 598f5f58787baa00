"""deploy/k8s renders, validates against the real schemas, and follows the platform's policies.

kustomize renders every overlay (and its Jobs); core objects are validated with
kubernetes-validate (strict: unknown fields fail) against the oldest and newest Kubernetes
we claim; Strimzi, ECK and CloudNativePG objects against the operators' own CRD schemas,
fetched at test time (tools/k8s/fetch.py) and made strict the way the API server's strict
field validation is. The policy tests read the rendered output, never the source files.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.k8s import fetch
from tools.k8s import render as rendering
from tools.k8s.render import ROOT
from watercooler import config

OVERLAYS = ["dev", "prod"]
BUILDS = [*OVERLAYS, *(f"{o}/jobs" for o in OVERLAYS)]
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]  # native gRPC probes and matchLabelKeys need >= 1.27; we claim 1.30+
OPERATOR_GROUPS = {"kafka.strimzi.io", "elasticsearch.k8s.elastic.co", "postgresql.cnpg.io"}


# --- rendering ---------------------------------------------------------------------------------
@cache
def kustomize() -> Path:
    try:
        return rendering.kustomize()
    except fetch.ToolUnavailable as exc:
        pytest.skip(f"kustomize could not be installed: {exc}")


def render(build: str) -> tuple[dict[str, Any], ...]:
    """The overlay's objects (tools.k8s.render); the test skips when kustomize cannot be installed."""
    kustomize()
    return rendering.render(build)


def objects(build: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [o for o in render(build) if kind is None or o["kind"] == kind]


def by_name(build: str, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects(build, kind) if o["metadata"]["name"] == name]
    assert found, f"{build}: no {kind} {name}"
    return found[0]


def pod_templates(build: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod template) for every Deployment and Job."""
    return [(o, o["spec"]["template"]) for o in render(build) if o["kind"] in ("Deployment", "Job")]


def configmap(build: str) -> dict[str, str]:
    maps = [o for o in objects(build, "ConfigMap") if o["metadata"]["name"].startswith("watercooler-config-")]
    assert len(maps) == 1, f"{build}: expected one generated watercooler-config"
    return maps[0]["data"]


def group_of(obj: dict[str, Any]) -> str:
    return obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""


@pytest.mark.parametrize("build", BUILDS)
def test_every_overlay_renders(build: str) -> None:
    kinds = {o["kind"] for o in render(build)}
    if build in OVERLAYS:
        for kind in (
            "Deployment",
            "Service",
            "ConfigMap",
            "ServiceAccount",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "Kafka",
            "KafkaNodePool",
            "KafkaTopic",
            "Elasticsearch",
            "Cluster",
        ):
            assert kind in kinds, f"{build} renders no {kind}"
        assert all(o["metadata"].get("namespace") == ("watercooler-dev" if build == "dev" else "watercooler") for o in render(build))
    else:
        assert kinds >= {"Job", "ConfigMap", "ServiceAccount"}


# --- schemas -----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("build", BUILDS)
def test_core_objects_match_the_kubernetes_schemas(build: str, version: str) -> None:
    import kubernetes_validate

    core = [o for o in render(build) if group_of(o) not in OPERATOR_GROUPS]
    assert core
    errors = []
    for obj in core:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {'/'.join(map(str, exc.path))}")
    assert not errors, "\n".join(errors)


def _strict(schema: Any) -> Any:
    """What the API server's strict field validation does with a structural schema: an object
    with declared properties and no additionalProperties / preserve-unknown-fields rejects
    fields it does not declare (otherwise they would be silently pruned)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    """(group, version, kind) -> the operator's own openAPIV3Schema."""
    try:
        directories = [fetch.strimzi_crds(), fetch.eck_crds(), fetch.cnpg_crds()]
    except fetch.ToolUnavailable as exc:
        pytest.skip(f"operator CRDs could not be fetched: {exc}")
    schemas = {}
    for directory in directories:
        for path in sorted(directory.glob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text()):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                for version in crd["spec"]["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema:
                        schemas[(crd["spec"]["group"], version["name"], crd["spec"]["names"]["kind"])] = _strict(schema)
    return schemas


@pytest.mark.parametrize("build", OVERLAYS)
def test_operator_resources_match_the_operators_crds(build: str) -> None:
    import jsonschema

    schemas = crd_schemas()
    custom = [o for o in render(build) if group_of(o) in OPERATOR_GROUPS]
    assert {o["kind"] for o in custom} == {"Kafka", "KafkaNodePool", "KafkaTopic", "Elasticsearch", "Cluster"}
    errors = []
    for obj in custom:
        group, version = obj["apiVersion"].split("/")
        schema = schemas.get((group, version, obj["kind"]))
        assert schema, f"no CRD schema for {obj['apiVersion']} {obj['kind']}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(obj):
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message} at {'/'.join(map(str, error.absolute_path))}")
    assert not errors, "\n".join(errors)


def test_the_strict_crd_check_would_catch_a_typo() -> None:
    import jsonschema

    topic = dict(by_name("dev", "KafkaTopic", "profiles-events-v1"))
    topic["spec"] = {**topic["spec"], "partitons": 6}
    schema = crd_schemas()[("kafka.strimzi.io", "v1beta2", "KafkaTopic")]
    assert any("partitons" in e.message for e in jsonschema.Draft7Validator(schema).iter_errors(topic))


# --- policies: every container --------------------------------------------------------------------
@pytest.mark.parametrize("build", BUILDS)
def test_every_container_is_limited_non_root_and_read_only(build: str) -> None:
    service_accounts = {o["metadata"]["name"]: o for o in objects(build, "ServiceAccount")}
    for workload, template in pod_templates(build):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert service_accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 1000, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["runAsNonRoot"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security["seccompProfile"]["type"] == "RuntimeDefault", name
            for key in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][key]), f"{name}: {key}"
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["volumeName" if "volumeName" in tmp[0] else "name"]], f"{name}: /tmp"
            if workload["kind"] == "Deployment":
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in container, f"{name}: no {probe}"


@pytest.mark.parametrize("build", OVERLAYS)
def test_services_are_probed_over_grpc_health_on_the_port_they_serve(build: str) -> None:
    env = configmap(build)
    for service, port in config.DEFAULT_GRPC_PORTS.items():
        deployment = by_name(build, "Deployment", service)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert int(env[f"WC_{service.upper()}_PORT"]) == port
        ports = {p["containerPort"] for p in container["ports"]}
        assert {port, config.DEFAULT_METRICS_PORTS[service]} <= ports
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == port, f"{service} {probe}"


def image_packages() -> set[str]:
    """The top-level directories of this checkout the image's last stage copies into /app."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM "):]
    return set(re.findall(r"^COPY --from=build /src/(\w+) /app/", runtime, flags=re.M))


@pytest.mark.parametrize("build", BUILDS)
def test_every_command_is_a_module_the_image_carries(build: str) -> None:
    packages = image_packages()
    assert {"libs", "services"} <= packages
    for workload, template in pod_templates(build):
        for container in template["spec"]["containers"]:
            command = container["command"]
            if command[:2] != ["python", "-m"]:
                continue
            module = command[2]
            name = workload["metadata"]["name"]
            assert importlib.util.find_spec(module) is not None, f"{build}: {name} runs python -m {module}, which does not exist"
            top = module.split(".")[0]
            assert top in packages or (top == "watercooler" and "libs" in packages), f"{build}: {name} runs {module}, which the image does not copy"


@pytest.mark.parametrize("build", OVERLAYS)
def test_every_platform_process_has_a_deployment(build: str) -> None:
    commands = {tuple(d["spec"]["template"]["spec"]["containers"][0]["command"][1:]): d for d in objects(build, "Deployment")}
    expected = [("-m", f"services.{s}") for s in config.SERVICES]
    expected += [("-m", f"services.{s}.relay") for s in config.EVENT_SOURCED_SERVICES]
    expected += [("-m", "services.search.readmodels.projections"), ("-m", "services.search.readmodels.counters"), ("-m", "services.posts.thumbnails")]
    for command in expected:
        assert command in commands, f"{build}: no Deployment runs python {' '.join(command)}"
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in objects(build, "HorizontalPodAutoscaler")}
    for service in config.EVENT_SOURCED_SERVICES:
        relay = commands[("-m", f"services.{service}.relay")]
        # Exactly one publisher per transactional.id: one replica, never two during a rollout, no HPA.
        assert relay["spec"]["replicas"] == 1 and relay["spec"]["strategy"]["type"] == "Recreate"
        assert relay["metadata"]["name"] not in hpa_targets
    pdb_selected = {p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for p in objects(build, "PodDisruptionBudget")}
    assert {d["metadata"]["name"] for d in commands.values()} <= pdb_selected


# --- policies: Services, topics, autoscaling ------------------------------------------------------
@pytest.mark.parametrize("build", OVERLAYS)
def test_every_service_port_is_a_container_port(build: str) -> None:
    templates = [t for _, t in pod_templates(build)]
    for service in objects(build, "Service"):
        selector = service["spec"]["selector"]
        selected = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert selected, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for template in selected:
                container_ports = [p for c in template["spec"]["containers"] for p in c.get("ports", [])]
                match = [p for p in container_ports if target in (p.get("name"), p["containerPort"])]
                assert match, f"Service {service['metadata']['name']} port {target} is no container port"
                assert match[0]["containerPort"] == port["port"], f"{service['metadata']['name']}: {port['port']} != {match[0]}"


def topics_the_code_uses() -> set[str]:
    """Every topic a service or processor reads or writes, asked from the code itself
    (names without WC_NAMESPACE, as on Kubernetes)."""
    settings = dataclasses.replace(config.load(), namespace="")
    topics = {settings.topic(s) for s in config.EVENT_SOURCED_SERVICES} | {settings.dead_letter_topic}
    # faust's assignor topic for every consumer group a processor starts.
    groups = set()
    for main in (ROOT / "services").rglob("__main__.py"):
        text = main.read_text()
        groups |= set(re.findall(r'(?:create_app|faust_app)\(\s*"([^"]+)"', text)) | set(re.findall(r'consumer_group\(\s*"([^"]+)"', text))
    assert {"search-projections", "search-stats"} <= groups
    topics |= {f"{g}-__assignor-__leader" for g in groups}
    try:  # facts written by the posts service and counted by the stats worker
        from services.search.readmodels.counters import views

        topics |= set(views.topics(settings))
    except ImportError:
        pass
    try:
        from services.posts.library import viewlog

        topics |= {settings.fact_topic(viewlog.VIEWS), settings.fact_topic(viewlog.DOWNLOADS)}
    except ImportError:
        pass
    return topics


@pytest.mark.parametrize("build", OVERLAYS)
def test_every_topic_the_code_uses_has_a_kafka_topic(build: str) -> None:
    declared = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in objects(build, "KafkaTopic")}
    missing = topics_the_code_uses() - set(declared)
    assert not missing, f"{build}: no KafkaTopic for {sorted(missing)}"
    env = configmap(build)
    expected = {"dev": (6, 1, "1"), "prod": (48, 3, "2")}[build]
    for name, topic in declared.items():
        spec = topic["spec"]
        assert spec["replicas"] == expected[1] and spec["config"]["min.insync.replicas"] == expected[2], name
        if name.endswith("-__assignor-__leader"):
            assert spec["partitions"] == 1, name  # faust declares it with one partition
            continue
        # The partitions faust and the platform's admin client would create must equal the declared ones.
        assert spec["partitions"] == expected[0] == int(env["WC_TOPIC_PARTITIONS"]), name
        assert spec["replicas"] == int(env["WC_TOPIC_REPLICATION"]), name
        assert spec["config"]["retention.ms"] == "-1", f"{name}: the log is the source of every projection"


@pytest.mark.parametrize("build", OVERLAYS)
def test_autoscalers_watch_cpu_for_services_and_lag_for_processors(build: str) -> None:
    partitions = int(configmap(build)["WC_TOPIC_PARTITIONS"])
    for hpa in objects(build, "HorizontalPodAutoscaler"):
        target = by_name(build, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        component = target["metadata"]["labels"]["app.kubernetes.io/component"]
        metric = hpa["spec"]["metrics"][0]
        if component == "service":
            assert metric["resource"]["name"] == "cpu"
        else:
            assert component == "processor"
            assert metric["type"] == "External" and metric["external"]["metric"]["name"] == "wc_consumer_lag"
            # More workers than partitions would sit idle.
            assert hpa["spec"]["maxReplicas"] <= partitions
    assert {h["spec"]["scaleTargetRef"]["name"] for h in objects(build, "HorizontalPodAutoscaler")} == {*config.SERVICES, "projections", "stats", "thumbnails"}


def test_prod_spreads_every_deployment_and_engine_across_zones() -> None:
    zone = "topology.kubernetes.io/zone"
    for deployment in objects("prod", "Deployment"):
        keys = [c["topologyKey"] for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]]
        assert zone in keys, deployment["metadata"]["name"]
    assert by_name("prod", "Kafka", "watercooler")["spec"]["kafka"]["rack"]["topologyKey"] == zone
    for pool in objects("prod", "KafkaNodePool"):
        assert pool["spec"]["template"]["pod"]["topologySpreadConstraints"][0]["topologyKey"] == zone
    assert by_name("prod", "Cluster", "watercooler-pg")["spec"]["affinity"]["topologyKey"] == zone
    for node_set in by_name("prod", "Elasticsearch", "watercooler")["spec"]["nodeSets"]:
        assert "zone" in node_set["config"]["cluster.routing.allocation.awareness.attributes"]


def test_dev_is_one_of_everything() -> None:
    assert [p["spec"]["replicas"] for p in objects("dev", "KafkaNodePool")] == [1]
    assert by_name("dev", "Cluster", "watercooler-pg")["spec"]["instances"] == 1
    assert all(d["spec"]["replicas"] == 1 for d in objects("dev", "Deployment"))


# --- policies: configuration ---------------------------------------------------------------------
# WC_* variables the code reads whose default is right on Kubernetes too (or that only matter
# with WC_INFRA=local / containers, which Kubernetes never uses). A new variable fails the test
# below until it is either set in deploy/k8s or listed here with the reason.
SAFE_DEFAULTS = {
    "WC_NAMESPACE": "empty: Kubernetes gives each platform its own cluster objects",
    "WC_JWT_JWKS_URL": "unset: keys come from the mounted WC_JWT_PUBLIC_KEY_FILE; set it to use the IdP's JWKS",
    "WC_TLS_CERT": "unset: mutual TLS between services is optional (off by default; NetworkPolicies isolate the pods)",
    "WC_TLS_KEY": "unset: see WC_TLS_CERT",
    "WC_TLS_CA": "unset: see WC_TLS_CERT",
    "WC_KAFKA_PORT": "local infra only (the bootstrap address is WC_KAFKA_BOOTSTRAP)",
    "WC_KAFKA_CONTROLLER_PORT": "local infra only",
    "WC_KAFKA_HEAP": "local infra only (Strimzi sizes the brokers)",
    "WC_KAFKA_IMAGE": "testcontainers only",
    "WC_ES_PORT": "local infra only (the address is WC_ES_URL)",
    "WC_ES_TRANSPORT_PORT": "local infra only",
    "WC_ES_HEAP": "local infra only (ECK sizes the nodes)",
    "WC_ES_START_TIMEOUT": "local infra only",
    "WC_TOPOLOGY": "make run only (single or cluster)",
    "WC_CLUSTER_PORT_BASE": "the local cluster topology only (make run-cluster)",
    "WC_CLUSTER_KAFKA_HEAP": "the local cluster topology only",
    "WC_CLUSTER_ES_HEAP": "the local cluster topology only",
    "WC_ES_IMAGE": "testcontainers only",
    "WC_POSTGRES_IMAGE": "testcontainers only",
    "WC_FLAG_THRESHOLD": "a product rule with a default (posts)",
    "WC_MEMBERSHIP_CACHE_SECONDS": "a cache lifetime with a default (posts: 10 s until a left member loses access)",
    "WC_MEDIA_CACHE_SECONDS": "a cache lifetime with a default (profiles: 5 s until an avatar made RESTRICTED or removed stops showing)",
    "WC_VIEW_REQUESTS_REMEMBERED": "a memory bound with a default (posts: view/download request_ids kept for retries)",
    "WC_JAMS_SCHEDULER_INTERVAL": "a timer with a default (jams)",
    "WC_SEARCH_HTTP_HOST": "binds every interface by default, as the gRPC servers do",
    "WC_RELAY_IDLE_MAX": "a timer with a default (relay: longest sleep of an idle relay; docs/benchmarks/freshness.md)",
    "WC_PROCESSOR_BATCH_WITHIN": "a timer with a default (processors: longest wait to fill a batch; docs/benchmarks/freshness.md)",
    "WC_RELAY_LINGER": "a timer with a default (relay: how long a busy relay lets events gather, 50 ms; README)",
    "WC_GC_TUNING": "a switch with a default (services, relays, processors: the tuned garbage collector, on; libs/watercooler/gc_tuning.py)",
    "WC_PROCESSOR_MAX_ATTEMPTS": "a retry bound with a default (processors: tries of a failing batch before its record at fault is dead-lettered, 5; README)",
    "WC_STORE_GROUP_COMMIT": "a batch bound with a default (event stores: most commands per transaction, 64; README)",
    "WC_PAGE_TOKEN_TTL_SECONDS": "a token lifetime with a default (one hour)",
    "WC_S3_PORT": "local infra only (the address is WC_S3_ENDPOINT)",
    "WC_MEDIA_MAX_BYTES": "a product limit with a default (posts: largest upload, 200 MiB)",
    "WC_MEDIA_QUOTA_BYTES": "a product limit with a default (posts: content one person keeps, 2 GiB)",
    "WC_UPLOAD_TTL_SECONDS": "a lifetime with a default (posts: presigned PUTs and unconfirmed uploads, one hour)",
    "WC_DOWNLOAD_LINK_TTL_SECONDS": "a lifetime with a default (posts: presigned GETs, five minutes)",
    "WC_UPLOAD_SWEEP_SECONDS": "a timer with a default (posts: the object sweeper runs every five minutes)",
    "WC_THUMBNAIL_MAX_PIXELS": "a product limit with a default (thumbnails: the largest image decoded, 50 MP)",
    "WC_THUMBNAIL_MAX_BYTES": "a product limit with a default (thumbnails: the largest image file read, 64 MiB)",
    "WC_THUMBNAILS_METRICS_PORT": "the thumbnail maker's /metrics port, 9473 by default as its Deployment declares",
    "WC_PERSONAL_KEY_CACHE_SECONDS": "how long a process keeps a personal data key it was given (30 s by default; docs/personal-data.md)",
    "WC_PAGE_TOKEN_SECRET": "the four services set it from the watercooler-page-tokens Secret; processors and jobs issue no page tokens (unset: a built-in key)",
}
# Set per container from Secrets or mounted files, for the processes that need them.
ROLE_KEYS = {
    "WC_POSTGRES_USER": "pg",
    "WC_POSTGRES_PASSWORD": "pg",
    "WC_ES_URL": "es",
    "WC_JWT_PUBLIC_KEY_FILE": "service",
    "WC_JWT_PRIVATE_KEY_FILE": "signer",
    "WC_S3_ACCESS_KEY": "s3",
    "WC_S3_SECRET_KEY": "s3",
}


def signing_services() -> set[str]:
    """The services whose code signs tokens (service tokens for calls to other services, guest
    tokens of a redeemed invitation; ServiceCredentials signs and renews a service's own token):
    they, and only they, get the platform's signing key."""
    return {
        service
        for service in config.SERVICES
        if any(re.search(r"\b(issue_token|service_token|ServiceCredentials)\(", p.read_text()) for p in (ROOT / "services" / service).rglob("*.py"))
    }


def signs_tokens(template: dict[str, Any]) -> bool:
    """A processor whose module signs tokens (the thumbnail maker calls posts with its own)."""
    command = template["spec"]["containers"][0]["command"]
    if command[1:2] != ["-m"]:
        return False
    base = ROOT / command[2].replace(".", "/")
    module = base / "__main__.py" if base.is_dir() else base.with_suffix(".py")
    # shared_key_ring: the projections' RemoteKeyRing signs its own token (watercooler.personaldata).
    return module.exists() and bool(re.search(r"\b(issue_token|service_token|ServiceCredentials|shared_key_ring)\(", module.read_text()))


def wc_keys_in_code() -> set[str]:
    keys = set()
    for path in [*(ROOT / "libs" / "watercooler").rglob("*.py"), *(ROOT / "services").rglob("*.py"), *(ROOT / "tools").rglob("*.py")]:
        keys |= set(re.findall(r"\bWC_[A-Z0-9]+(?:_[A-Z0-9]+)*\b", path.read_text()))
    keys -= {"WC_POSTGRES"}  # a prefix in a message, not a variable
    # Built from the service name: WC_<SERVICE>_PORT / _ADDR / _METRICS_PORT.
    for service in config.SERVICES:
        keys |= {f"WC_{service.upper()}_PORT", f"WC_{service.upper()}_METRICS_PORT"}
    return keys


@pytest.mark.parametrize("build", BUILDS)
def test_every_setting_the_code_reads_without_a_safe_default_is_set(build: str) -> None:
    shared = configmap(build)
    required = wc_keys_in_code() - set(SAFE_DEFAULTS)
    for workload, template in pod_templates(build):
        labels = template["metadata"]["labels"]
        roles = {r for r in ("pg", "es", "kafka", "s3") if labels.get(f"watercooler.io/{r}-client") == "true"}
        if labels.get("app.kubernetes.io/component") == "service":
            roles.add("service")
            if workload["metadata"]["name"] in signing_services():
                roles.add("signer")
        elif signs_tokens(template):
            roles.add("signer")
        for container in template["spec"]["containers"]:
            assert container["envFrom"][0]["configMapRef"]["name"].startswith("watercooler-config-")
            env = {**shared, **{e["name"]: e.get("value", "<secret>") for e in container.get("env", [])}}
            for key in required:
                role = ROLE_KEYS.get(key)
                if role is None or role in roles:
                    assert key in env, f"{build}: {workload['metadata']['name']} does not set {key}"
            assert env["WC_INFRA"] == "external" and env["WC_STORE"] == "postgres"
            if roles & {"service", "signer"}:
                mounts = [m["mountPath"] for m in container["volumeMounts"]]
                public = env["WC_JWT_PUBLIC_KEY_FILE"].split(":") if "service" in roles else []
                key_files = [*public, *([env["WC_JWT_PRIVATE_KEY_FILE"]] if "signer" in roles else [])]
                for path in key_files:
                    assert any(path.startswith(m + "/") for m in mounts), f"{workload['metadata']['name']}: the JWT key {path} is mounted"
            else:
                assert "WC_JWT_PRIVATE_KEY_FILE" not in env, f"{workload['metadata']['name']} signs no token"
            for entry in container.get("env", []):
                assert "value" in entry or "secretKeyRef" in entry.get("valueFrom", {}) or "fieldRef" in entry.get("valueFrom", {})
    # Secret references only: nothing in the rendered output carries a Secret.
    assert not objects(build, "Secret")


def test_the_configuration_check_sees_every_variable() -> None:
    keys = wc_keys_in_code()
    assert {"WC_INFRA", "WC_KAFKA_BOOTSTRAP", "WC_ES_URL", "WC_STORE", "WC_JWT_PUBLIC_KEY_FILE", "WC_PROJECTIONS_METRICS_PORT"} <= keys
    unknown = set(SAFE_DEFAULTS) - keys
    assert not unknown, f"SAFE_DEFAULTS lists variables the code no longer reads: {unknown}"


# --- network policies ------------------------------------------------------------------------------
@pytest.mark.parametrize("build", OVERLAYS)
def test_network_policies_allow_only_the_architectures_flows(build: str) -> None:
    policies = {p["metadata"]["name"]: p for p in objects(build, "NetworkPolicy")}
    deny = policies["platform-default-deny"]["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny and "egress" not in deny
    egress_to = {name: p["spec"]["podSelector"]["matchLabels"] for name, p in policies.items() if name.endswith("-clients")}
    assert egress_to == {
        "kafka-clients": {"watercooler.io/kafka-client": "true"},
        "elasticsearch-clients": {"watercooler.io/es-client": "true"},
        "postgres-clients": {"watercooler.io/pg-client": "true"},
        "s3-clients": {"watercooler.io/s3-client": "true"},
    }
    flows = {}
    for workload, template in pod_templates(build):
        labels = template["metadata"]["labels"]
        flows[workload["metadata"]["name"]] = {r for r in ("kafka", "es", "pg", "s3") if labels.get(f"watercooler.io/{r}-client") == "true"}
    assert flows["search"] == {"es"} and flows["profiles"] == {"pg"} and flows["jams"] == {"pg"}
    assert flows["posts"] == {"pg", "kafka", "s3"}  # page-view and download facts; media content
    assert all(flows[f"relay-{s}"] == {"pg", "kafka"} for s in config.EVENT_SOURCED_SERVICES)
    assert flows["projections"] == flows["stats"] == {"kafka", "es"}
    assert flows["thumbnails"] == {"kafka", "s3"}  # and gRPC to posts, as a declared API client
    # Whoever calls another service over gRPC (the code holding ServiceCredentials) is a declared
    # API client, which the egress policy lets reach the services' gRPC ports; nobody else is.
    callers = {workload["metadata"]["name"] for workload, template in pod_templates(build)
               if template["metadata"]["labels"].get("watercooler.io/api-client") == "true"}
    assert callers == {"profiles", "posts", "jams", "thumbnails", "projections", "stats"}  # projections, stats: personal data keys from profiles
    egress = policies["api-callers-grpc"]["spec"]
    assert egress["podSelector"]["matchLabels"] == {"watercooler.io/api-client": "true"} and egress["policyTypes"] == ["Egress"]
    assert egress["egress"][0]["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "service"}}}]
    listener = by_name(build, "Kafka", "watercooler")["spec"]["kafka"]["listeners"][0]
    assert listener["networkPolicyPeers"] == [{"podSelector": {"matchLabels": {"watercooler.io/kafka-client": "true"}}}]
