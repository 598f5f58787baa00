"""A deterministic synthetic company, written through the platform's own gRPC APIs.

Same seed, same company: every write carries a request id derived from the
seed and the item, so seeding twice changes nothing (the retry returns the
first result)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc

from .client import bearer_metadata, channel, service_token
from .config import Settings
from .profiles.v1 import profiles_pb2, profiles_pb2_grpc

GIVEN = ["Ana", "José", "Zoë", "Émile", "Jürgen", "Søren", "Łukasz", "Ngozi", "Aiko", "Priya", "Mateo", "Fatima", "Olivia", "Chen", "Иван", "Мария", "Αλέξης", "Ελένη", "伟", "芳", "Raj", "Amara", "Kwame", "Lucía"]
FAMILY = ["García", "Müller", "Nakamura", "Okafor", "Smith", "Rossi", "Kowalski", "Dubois", "Andersen", "Patel", "Silva", "Петров", "Иванова", "Παπαδόπουλος", "王", "李", "Nguyen", "Haddad", "Mensah", "O'Brien"]
DEPARTMENTS = ["Research", "Software", "Consulting", "Sales", "Marketing", "Finance", "HR", "Legal", "Design", "Operations"]
COUNTRIES = ["US", "IN", "DE", "FR", "GB", "BR", "JP", "CN", "IE", "ES", "IT", "PL", "NG", "KE", "AU", "CA", "MX", "RU", "GR", "DK"]
EXPERTISE = ["python", "kafka", "elasticsearch", "kubernetes", "design", "blockchain", "ai", "security", "cloud", "mainframe", "databases", "ux", "finance", "legal", "quantum"]


@dataclass(frozen=True)
class Person:
    employee_id: str
    display_name: str
    sort_name: str
    department: str
    country: str
    manager_id: str
    expertise: tuple[str, ...]
    title: str


def people(size: int, seed: int = 42) -> Iterator[Person]:
    rng = random.Random(seed)
    for i in range(size):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        cjk = any("\u4e00" <= ch <= "\u9fff" for ch in given + family)
        display = f"{family}{given}" if cjk else f"{given} {family}"
        sort_name = display if cjk else f"{family}, {given}"
        manager = "" if i == 0 else f"e{rng.randrange(max(1, i // 5 + 1)):06d}"
        if manager == f"e{i:06d}":
            manager = "e000000"
        yield Person(
            employee_id=f"e{i:06d}",
            display_name=display,
            sort_name=sort_name,
            department=DEPARTMENTS[min(len(DEPARTMENTS) - 1, int(rng.paretovariate(1.2)) - 1)],
            country=COUNTRIES[min(len(COUNTRIES) - 1, int(rng.expovariate(0.25)))],
            manager_id=manager,
            expertise=tuple(sorted(set(rng.sample(EXPERTISE, rng.randint(1, 4))))),
            title=rng.choice(["Engineer", "Senior Engineer", "Architect", "Manager", "Consultant", "Researcher", "Designer"]),
        )


def seed_profiles(settings: Settings, size: int, seed: int = 42, progress: Callable[[int], None] | None = None) -> int:
    token = service_token(settings, "watercooler-seed")
    created = 0
    with channel(settings, "profiles") as ch:
        stub = profiles_pb2_grpc.ProfileServiceStub(ch)
        for person in people(size, seed):
            request = profiles_pb2.CreateProfileRequest(
                profile=profiles_pb2.Profile(
                    employee_id=person.employee_id,
                    display_name=person.display_name,
                    sort_name=person.sort_name,
                    department=person.department,
                    country=person.country,
                    manager=f"profiles/{person.manager_id}" if person.manager_id else "",
                    expertise=list(person.expertise),
                    title=person.title,
                ),
                request_id=f"seed-{seed}-profile-{person.employee_id}",
            )
            try:
                stub.CreateProfile(request, metadata=bearer_metadata(token), timeout=30)
                created += 1
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:  # seeded before with another seed
                    raise
            if progress:
                progress(1)
    return created


# Every domain adds its seeder here: (name, function(settings, size, seed, progress) -> int).
# `watercooler seed` and `make run` run them in this order; each must be idempotent
# (request ids derived from the seed) and write only through the public gRPC APIs.
SEEDERS: list[tuple[str, Callable[..., int]]] = [("profiles", seed_profiles)]
