"""The bootstrap Job: event topics, the index template and the first index behind every alias.

Idempotent, so the Job can run on every install and upgrade. On Kubernetes the
Strimzi KafkaTopics normally create the topics first; this makes a cluster without
the Topic Operator (or a new WC_NAMESPACE on a shared cluster) work the same way.
Run in the image as ``python /app/deploy/bootstrap.py``; prints one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os

from watercooler import config, kafka
from watercooler.projection import es_client


def template_name(settings: config.Settings) -> str:
    return f"{settings.namespace}-watercooler-projections" if settings.namespace else "watercooler-projections"


def index_template(settings: config.Settings) -> dict:
    """A low-priority template so any index behind a projection alias (first index,
    reindexed versions, or one an operator creates by hand) gets the cluster's shard and
    replica counts; the platform's own index bodies set the same values explicitly."""
    return {
        "name": template_name(settings),
        "index_patterns": [f"{settings.index_alias('')}*"],
        "priority": 10,
        "template": {
            "settings": {
                "number_of_shards": int(os.environ.get("WC_ES_SHARDS") or "1"),
                "number_of_replicas": int(os.environ.get("WC_ES_REPLICAS") or "0"),
            }
        },
        "meta": {"managed_by": "watercooler-bootstrap"},
    }


async def prepare_indices(settings: config.Settings) -> dict[str, str]:
    from services.search.readmodels.projections import ALL

    es = es_client(settings)
    try:
        await es.indices.put_index_template(**index_template(settings))
        return {projection.name: await projection(settings).ensure_index(es) for projection in ALL}
    finally:
        await es.close()


def main() -> None:
    settings = config.load()
    topics = kafka.ensure_topics(settings)
    indices = asyncio.run(prepare_indices(settings))
    print(json.dumps({"topics": topics, "index_template": template_name(settings), "indices": indices}))


if __name__ == "__main__":
    main()
