"""`python -m services.jams.relay`: publishes the jams service's stored events to Kafka
(watercooler.relay). Exactly one runs per service."""

from __future__ import annotations

from watercooler.relay import main

from .application import JamsApplication

if __name__ == "__main__":
    main(JamsApplication)
