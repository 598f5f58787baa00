"""Each gRPC service Deployment, configured exactly as the rendered manifests configure it,
accepts the tokens every other one signs.

For every overlay, each Deployment of a gRPC service becomes two simulated pods (two
replicas, tools/k8s/pods.py): exactly the container's environment and mounted files, each pod
with a root of its own, so a key a pod generates for itself on its own ``/tmp`` is seen for
what it is. Under that environment the test runs what a service runs to decide keys:
``config.load()``, ``auth.issue_token`` (as ``service_token`` and the guest tokens of a redeemed
invitation do) and ``auth.TokenVerifier``; test_deployment_processes.py starts the services.
"""

from __future__ import annotations

import time

import jwt
import pytest

from tests.k8s.test_manifests import OVERLAYS, signing_services
from tools.k8s.pods import Keys, Pod, make_pod, new_key, pem_private, service_deployments
from watercooler import auth
from watercooler.errors import Unauthenticated

REPLICAS = ("a", "b")


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(new_key(), new_key())


@pytest.fixture(scope="module", params=OVERLAYS)
def pods(request, keys: Keys, tmp_path_factory) -> list[Pod]:
    build = request.param
    secrets = keys.secrets()
    return [
        make_pod(build, deployment, replica, tmp_path_factory.mktemp(f"{build}-{deployment['metadata']['name']}-{replica}"), secrets)
        for deployment in service_deployments(build)
        for replica in REPLICAS
    ]


def test_the_code_signs_in_profiles_posts_and_jams() -> None:
    # The check below is only as good as this list: posts calls profiles with service tokens and
    # profiles calls posts (media items), jams signs the guest tokens of redeemed invitations.
    assert signing_services() == {"profiles", "posts", "jams"}


def test_a_token_signed_by_one_deployment_is_accepted_by_every_other(pods: list[Pod]) -> None:
    signers = signing_services()
    verifiers = {pod.name: auth.TokenVerifier(pod.settings()) for pod in pods}
    refused = []
    for pod in (p for p in pods if p.deployment in signers):
        settings = pod.settings()
        try:
            tokens = {
                "service token": auth.issue_token(settings, pod.deployment, "service"),
                "guest token": auth.issue_token(settings, "guest-1", "guest", jams=("jam-1",)),
            }
        except auth.SigningKeyNotConfigured as exc:
            pytest.fail(f"{pod.name} signs tokens in its code but cannot: {exc}")
        for what, token in tokens.items():
            for name, verifier in verifiers.items():
                try:
                    verifier.verify(f"Bearer {token}")
                except Unauthenticated as exc:
                    refused.append(f"a {what} of {pod.name} is refused by {name}: {exc}")
    assert not refused, "\n".join(refused)


def test_the_identity_providers_tokens_are_accepted_by_every_deployment(pods: list[Pod], keys: Keys) -> None:
    for pod in pods:
        settings = pod.settings()
        claims = {"sub": "e1", "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "exp": int(time.time()) + 60, "wc_kind": "employee"}
        token = jwt.encode(claims, pem_private(keys.provider), algorithm="RS256")
        assert auth.TokenVerifier(settings).verify(f"Bearer {token}").subject == "e1", pod.name


def test_only_the_signing_deployments_hold_the_signing_key(pods: list[Pod], keys: Keys) -> None:
    private = pem_private(keys.platform)
    signers = signing_services()
    for pod in pods:
        holds = any(path.read_bytes() == private for path in pod.files())
        assert holds == (pod.deployment in signers), f"{pod.name} {'holds' if holds else 'lacks'} the platform's signing key"
        if pod.deployment not in signers:
            # Real keys are configured: refusing to sign beats a generated key nobody trusts.
            with pytest.raises(auth.SigningKeyNotConfigured, match="WC_JWT_PRIVATE_KEY_FILE"):
                auth.issue_token(pod.settings(), "someone", "service")


def test_the_simulated_pods_share_nothing_but_the_manifests(pods: list[Pod]) -> None:
    # The data dir (where a dev key pair would be generated) is each pod's own emptyDir.
    data_dirs = [pod.settings().data_dir for pod in pods]
    assert len(set(data_dirs)) == len(pods)
    assert all(str(d).startswith(str(pod.root)) for d, pod in zip(data_dirs, pods, strict=True))


def test_page_token_and_database_secrets_reach_the_environment(pods: list[Pod], keys: Keys) -> None:
    # The simulation resolves secretKeyRef and $(VAR) as the kubelet does.
    search = next(p for p in pods if p.deployment == "search")
    assert search.env["WC_ES_URL"].startswith("http://watercooler:es-password@")
    posts = next(p for p in pods if p.deployment == "posts")
    assert posts.env["WC_POSTGRES_PASSWORD"] == "pg-password"
    assert {p.env["WC_PAGE_TOKEN_SECRET"] for p in pods} == {"0" * 64}
