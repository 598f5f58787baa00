"""The capacity model in deploy/k8s/README.md is what benchmarks/capacity.py computes from the bench
JSON beside it, and its arithmetic scales the way a model must."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from benchmarks import capacity


@pytest.fixture(scope="module")
def bench() -> dict:
    return json.loads(capacity.BENCH_JSON.read_text())


def test_the_k8s_readme_holds_the_model_of_the_latest_bench(bench):
    readme = capacity.K8S_README.read_text()
    assert capacity.render(bench) in readme, "regenerate it: python -m benchmarks.capacity --write"


def test_a_costlier_search_needs_proportionally_more_search_cores(bench):
    costs = capacity.unit_costs(bench)
    rates = capacity.SEED_COMPANY.peak_rates()
    base = capacity.cores_needed(costs, rates)
    doubled = capacity.cores_needed(costs, {k: (2 * v if k == "searches/s" else v) for k, v in rates.items()})
    search_share = costs["search"]["search"] * rates["searches/s"] / 1000
    assert doubled["search"] == pytest.approx(base["search"] + search_share)
    assert doubled["write services"] == pytest.approx(base["write services"])


def test_the_larger_company_needs_more_of_everything_that_scales(bench):
    costs = capacity.unit_costs(bench)
    small = capacity.plan(costs, capacity.SEED_COMPANY, bench)
    large = capacity.plan(costs, capacity.HUNDRED_MILLION, bench)
    for component in capacity.COMPONENTS:
        assert large["cores"][component] > small["cores"][component], component
    assert large["partitions"] >= small["partitions"] and large["partitions"] % 6 == 0
    assert large["es_nodes"] > small["es_nodes"] and large["primary_shards"] > small["primary_shards"]


def test_replicas_never_fall_below_one_per_zone(bench):
    costs = capacity.unit_costs(bench)
    idle = dataclasses.replace(capacity.SEED_COMPANY, people=1, page_views_per_day=0, downloads_per_day=0, jam_participants=0)
    assert set(capacity.plan(costs, idle, bench)["replicas"].values()) == {capacity.MIN_REPLICAS}


def test_the_single_write_cost_is_the_mean_of_the_measured_commands(bench):
    changed = copy.deepcopy(bench)
    for name in capacity.SINGLE_WRITES:
        per_process = changed["platform"]["commands"][name]["cpu_ms_per_call"]
        per_process["posts"] = per_process.get("posts", 0.0) + 6.0
    before = capacity.unit_costs(bench)["single write"]["write services"]
    after = capacity.unit_costs(changed)["single write"]["write services"]
    # five of the six measured writes cost 6 ms more in the write services
    assert after - before == pytest.approx(6.0 * len(capacity.SINGLE_WRITES) / (len(capacity.SINGLE_WRITES) + 1))
