"""`python -m services.profiles.relay`: publishes the profiles service's stored events to Kafka
(watercooler.relay). Exactly one runs per service."""

from __future__ import annotations

from watercooler.relay import main

from .application import ProfilesApplication

if __name__ == "__main__":
    main(ProfilesApplication)
