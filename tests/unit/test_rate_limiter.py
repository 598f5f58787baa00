from watercooler.auth import Principal
from watercooler.grpc_server import RateLimiter


def test_bucket_refills_at_the_rate():
    limiter = RateLimiter(rate=10, burst=3)
    person = Principal("e1", "employee")
    assert [limiter.check(person, now=100.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.1]
    assert limiter.check(person, now=100.05) > 0  # half a token back: still waiting
    assert limiter.check(person, now=100.2) == 0.0


def test_principals_are_limited_separately_and_services_not_by_default():
    limiter = RateLimiter(rate=1, burst=1)
    assert limiter.check(Principal("e1", "employee"), now=0) == 0
    assert limiter.check(Principal("e1", "employee"), now=0) > 0
    assert limiter.check(Principal("e2", "employee"), now=0) == 0
    assert all(limiter.check(Principal("svc", "service"), now=0) == 0 for _ in range(100))
