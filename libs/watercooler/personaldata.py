"""Personal fields of events, sealed with a key per person (crypto-shredding).

Events are never rewritten, so a person's data cannot be deleted from the log; instead the
fields that hold it are stored and published sealed (AES-GCM, from the ``cryptography``
package) with a key of that person, and erasing the person destroys the key. Every copy of
the log (the store, Kafka, a backup, a replay years later) then holds only ciphertext nobody
can open, and whoever reads it gets the field's tombstone instead ("Former employee" for a
name, "" for text).

This module is the one place that knows:
- which fields of which events are personal and whose key applies (``PERSONAL_FIELDS``);
- the sealed form of a field (``wc:pd1:<key id>:<base64url(nonce | ciphertext)>``, a string,
  so the event's proto message keeps its types and Kafka carries it as it is);
- how to seal an event's state before it is stored (``seal_state``, used by the event store's
  mapper), open it when an aggregate is loaded (``open_state``), and open a published event's
  payload for a projection (``open_payload``).

Keys are kept by the profiles service (``services/profiles/personal_keys.py``) and handed to
the other services and the projections over gRPC (``RemoteKeyRing``): one place to destroy a
key is what makes an erasure complete.

Key ids: what a person wrote is sealed with the key named by their employee id (the author
field of the event, or the event's actor when the event names no author); the events of their
Profile aggregate with the key named by the profile's aggregate id (only the first of them
names the employee). ``ErasePerson`` destroys both.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import randomness
from .errors import DomainError, FailedPrecondition
from .randomness import random_bytes

log = logging.getLogger(__name__)

PREFIX = "wc:pd1:"
KEY_BYTES = 32
NONCE_BYTES = 12
FORMER_EMPLOYEE = "Former employee"
# What a field reads as once its key is gone: names say who is gone, everything else is empty.
NAME_FIELDS = frozenset({"display_name", "sort_name", "owner_display_name", "owner_sort_name"})

AUTHOR = "author"  # the key of the person named by one of the event's fields
ACTOR = "actor"  # the key of the person who caused the event (edits name no author)
AGGREGATE = "aggregate"  # the key named by the aggregate id (a profile's events)


@dataclass(frozen=True)
class Personal:
    """An event's personal fields and whose key seals them."""

    fields: tuple[str, ...]
    subject: str  # AUTHOR, ACTOR or AGGREGATE
    author_field: str = ""
    # Repeated nested messages whose elements hold what someone else wrote (a jam's results copy
    # each top idea's title): (the list field, the fields of an element, the element's field
    # naming whose key seals them). Sealed as ``<list field>.<field>``; an element that names
    # nobody stays as it is (events recorded before the author was copied in).
    nested: tuple[tuple[str, tuple[str, ...], str], ...] = ()

    def key_id(self, state: Mapping[str, Any], aggregate_id: str, actor: str) -> str:
        if self.subject == AUTHOR:
            return person_key_id(str(state.get(self.author_field) or actor))
        if self.subject == AGGREGATE:
            return aggregate_id
        return actor


_PROFILE = ("display_name", "sort_name", "title", "bio", "photo_uri")
# By the event's proto name. String fields, or lists of strings (sealed element by element).
PERSONAL_FIELDS: dict[str, Personal] = {
    "watercooler.profiles.v1.ProfileCreated": Personal(_PROFILE, AGGREGATE),
    "watercooler.profiles.v1.ProfileUpdated": Personal(_PROFILE, AGGREGATE),
    "watercooler.profiles.v1.ProfilePhotoSet": Personal(("photo",), AGGREGATE),
    "watercooler.profiles.v1.StatusUpdatePosted": Personal(("text", "photo_uri"), AUTHOR, "author_id"),
    "watercooler.posts.v1.BlogCreated": Personal(("title", "description", "owner_display_name", "owner_sort_name"), AUTHOR, "owner_id"),
    "watercooler.posts.v1.BlogEdited": Personal(("title", "description"), ACTOR),
    "watercooler.posts.v1.PostCreated": Personal(("title", "body", "tags"), AUTHOR, "author_id"),
    "watercooler.posts.v1.PostEdited": Personal(("title", "body", "tags"), ACTOR),
    # Hashtags are words of the text; mentions name other people (their ids stay).
    "watercooler.posts.v1.MicropostCreated": Personal(("text", "hashtags"), AUTHOR, "author_id"),
    "watercooler.posts.v1.MicropostEdited": Personal(("text", "hashtags"), ACTOR),
    "watercooler.posts.v1.CommentCreated": Personal(("body",), AUTHOR, "author_id"),
    "watercooler.posts.v1.CommentEdited": Personal(("body",), ACTOR),
    "watercooler.posts.v1.BookmarkCreated": Personal(("title", "notes"), AUTHOR, "owner_id"),
    "watercooler.posts.v1.BookmarkEdited": Personal(("title", "notes"), ACTOR),
    "watercooler.posts.v1.BookmarkResaved": Personal(("title", "notes"), ACTOR),
    "watercooler.jams.v1.IdeaCreated": Personal(("title", "description"), AUTHOR, "author"),
    "watercooler.jams.v1.ThreadCreated": Personal(("title", "body"), AUTHOR, "author"),
    "watercooler.jams.v1.ReplyCreated": Personal(("body",), AUTHOR, "author"),
}


def _also(event_type: str, *fields: str) -> None:
    """Seal these fields of an event as well, with the key its rule names."""
    rule = PERSONAL_FIELDS[event_type]
    PERSONAL_FIELDS[event_type] = replace(rule, fields=(*rule.fields, *fields))


# --- directory facts, bookmark urls, the reasons people give -----------------------------------
# A profile's directory facts say who the person is as much as the name does; the blog's copy
# of the owner's at its creation with them. Why someone left is about them alone.
_PROFILE_FACTS = ("department", "country", "expertise", "languages")
for _event in ("watercooler.profiles.v1.ProfileCreated", "watercooler.profiles.v1.ProfileUpdated"):
    _also(_event, *_PROFILE_FACTS)
_also("watercooler.posts.v1.BlogCreated", "owner_department", "owner_country")
PERSONAL_FIELDS["watercooler.profiles.v1.ProfileBecameAlumni"] = Personal(("reason",), AGGREGATE)
# The link a person saved (only BookmarkCreated carries it; the bookmark's id is a hash of it).
_also("watercooler.posts.v1.BookmarkCreated", "url")
# The free text given with a flag or a moderator's hide or restore, with the key of who gave it
# (``ItemRestored.reason`` is a code the platform writes: not sealed). The same events in every
# service that has flaggable items.
for _service in ("profiles", "posts", "jams"):
    PERSONAL_FIELDS[f"watercooler.{_service}.v1.ItemFlagged"] = Personal(("reason",), AUTHOR, "flagger_id")
    PERSONAL_FIELDS[f"watercooler.{_service}.v1.ItemHiddenByModerator"] = Personal(("reason",), AUTHOR, "moderator_id")
    PERSONAL_FIELDS[f"watercooler.{_service}.v1.ItemRestoredByModerator"] = Personal(("reason",), AUTHOR, "moderator_id")
# The wiki, the media library and a jam's published results (see docs/personal-data.md). A
# page's revisions are sealed with the key of the person who wrote each (``author`` of the
# change); a title claim (the store's bookkeeping of which page a title names, never published)
# with the writer's. A space's name and description are not here: they name a place many
# people write in, like a jam's, a forum's or a community's.
PERSONAL_FIELDS.update({
    # ``links``: the titles the text links to, words of the text.
    "watercooler.posts.v1.PageCreated": Personal(("title", "body", "links", "summary"), AUTHOR, "author"),
    "watercooler.posts.v1.PageEdited": Personal(("body", "links", "summary"), AUTHOR, "author"),
    "watercooler.posts.v1.PageRenamed": Personal(("old_title", "title"), AUTHOR, "author"),
    "watercooler.posts.v1.Claimed": Personal(("title",), AUTHOR, "author"),
    # Tags are the owner's words too, like a post's (sealed element by element).
    "watercooler.posts.v1.MediaItemRegistered": Personal(("title", "description", "tags"), AUTHOR, "owner"),
    "watercooler.posts.v1.MediaItemUpdated": Personal(("title", "description", "tags"), AUTHOR, "owner"),
    "watercooler.jams.v1.ResultsPublished": Personal((), ACTOR, nested=(("entries", ("title",), "author"),)),
})


# Why an item goes when its owner is erased (MediaItemRemoved.reason): the projection blanks the
# item's text on it too, since that event races the ProfileErased it follows.
ERASED_OWNER_REASON = "its owner's personal data was erased"


def person_key_id(subject: str) -> str:
    """The key id of a person named as ``profiles/{id}`` or by their id: the employee id."""
    return subject.removeprefix("profiles/")


def personal(event_type: str) -> Personal | None:
    return PERSONAL_FIELDS.get(event_type)


def tombstone(field: str) -> str:
    return FORMER_EMPLOYEE if field in NAME_FIELDS else ""


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def key_id_of(value: str) -> str:
    return value[len(PREFIX):].rsplit(":", 1)[0]


def _aad(key_id: str, field: str) -> bytes:
    # Binds a sealed value to its person and field: moved to another field or forged with
    # another person's id, it does not open.
    return f"{key_id}\x1f{field}".encode()


Key = bytes | AESGCM  # a key's bytes, or the cipher made of them (see ``ciphers``)


def ciphers(keys: Mapping[str, bytes]) -> dict[str, AESGCM]:
    """The keys as ciphers, for the several values one event or batch seals or opens with each:
    making the cipher (its key schedule) costs twice the encryption of a field (cryptography 50:
    about 1.8 against 0.9 us), and a profile event seals about a dozen values with one key."""
    return {key_id: AESGCM(key) for key_id, key in keys.items()}


def _cipher(key: Key) -> AESGCM:
    return key if isinstance(key, AESGCM) else AESGCM(key)


def seal(key_id: str, key: Key, field: str, value: str) -> str:
    if not value:
        return value  # an empty field says nothing about anyone
    nonce = random_bytes(NONCE_BYTES)  # a fresh nonce per value, whatever the cipher object
    sealed = _cipher(key).encrypt(nonce, value.encode(), _aad(key_id, field))
    return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def unseal(value: str, field: str, keys: Mapping[str, Key]) -> str:
    """The plain value; the field's tombstone when the key is gone (or the value was tampered with)."""
    if not is_sealed(value):
        return value
    key_id = key_id_of(value)
    key = keys.get(key_id)
    if key is None:
        return tombstone(field)
    blob = value[len(PREFIX) + len(key_id) + 1:]
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    try:
        return _cipher(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(key_id, field)).decode()
    except InvalidTag:
        return tombstone(field)


def generate_key() -> bytes:
    return generate_keys(1)[0]


def generate_keys(count: int) -> list[bytes]:
    """``count`` new AES-256 keys, read from the OS's CSPRNG at once."""
    return randomness.generate_keys(count, KEY_BYTES)


# Bookmark tags: what a person files a link under says what they work on or care about. Added to
# the bookmark events' rules whatever else those seal.
for _bookmark_event in ("BookmarkCreated", "BookmarkEdited", "BookmarkResaved"):
    _rule = PERSONAL_FIELDS[f"watercooler.posts.v1.{_bookmark_event}"]
    PERSONAL_FIELDS[f"watercooler.posts.v1.{_bookmark_event}"] = Personal((*_rule.fields, "tags"), _rule.subject, _rule.author_field)


# --- keys ---------------------------------------------------------------------------------------
class PersonErased(FailedPrecondition):
    """A write sealed with the key of a person who was erased: nothing of them is stored again."""


class KeyRing(Protocol):
    def keys(self, key_ids: Collection[str], create: bool = False) -> dict[str, bytes]:
        """The keys of those ids that have one. ``create``: make a key for an id that never had
        one; an erased id never gets one again (absent from the answer either way)."""

    def close(self) -> None:
        """Stop what the ring runs in the background and let go of its connections."""


def require_keys(ring: KeyRing, key_ids: Collection[str]) -> dict[str, bytes]:
    """The keys to seal with, made if new; PersonErased (FAILED_PRECONDITION) for an erased person."""
    wanted = set(key_ids)
    if not wanted:
        return {}
    found = ring.keys(wanted, create=True)
    missing = wanted - found.keys()
    if missing:
        raise PersonErased(f"the personal data of {sorted(missing)[0]} was erased; nothing of theirs can be written", field="name")
    return found


class MemoryKeyRing:
    """Keys in a dict: for unit tests and tools that run without the profiles service."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes | None] = {}

    def keys(self, key_ids: Collection[str], create: bool = False) -> dict[str, bytes]:
        out = {}
        for key_id in key_ids:
            if key_id not in self._keys and create:
                self._keys[key_id] = generate_key()
            key = self._keys.get(key_id)
            if key is not None:
                out[key_id] = key
        return out

    def destroy(self, key_ids: Iterable[str]) -> None:
        for key_id in key_ids:
            self._keys[key_id] = None

    def close(self) -> None:
        pass  # nothing runs beside it


class CachedKeys:
    """A key ring's answers kept a short while: a key for ``ttl`` seconds, an erased (absent)
    one for good, since an erasure is final. Thread-safe.

    With ``on_erased`` (a service, whose aggregates in memory were opened with these keys), every
    ``ttl`` seconds a thread asks again for the keys it holds, and calls ``on_erased`` when one
    is gone, so the service forgets what it opened with it. A destroyed key may so still open
    (and seal) in this process, and its data show from memory, for up to about ``2 * ttl``
    seconds: the bound documented in docs/personal-data.md."""

    def __init__(self, fetch: Callable[[Collection[str], bool], dict[str, bytes]], ttl: float, clock: Callable[[], float] = time.monotonic,
                 on_erased: Callable[[], None] | None = None):
        self._fetch, self.ttl, self._clock = fetch, ttl, clock
        self._on_erased = on_erased
        self._lock = threading.Lock()
        self._known: dict[str, tuple[bytes | None, float]] = {}
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()

    def keys(self, key_ids: Collection[str], create: bool = False) -> dict[str, bytes]:
        if self._on_erased is not None and self._watcher is None and not self._closed.is_set():
            self._start_watching()
        now = self._clock()
        out: dict[str, bytes] = {}
        ask: list[str] = []
        with self._lock:
            for key_id in set(key_ids):
                known = self._known.get(key_id)
                if known is not None and (known[0] is None or now - known[1] < self.ttl):
                    if known[0] is not None:
                        out[key_id] = known[0]
                else:
                    ask.append(key_id)
        if not ask:
            return out
        fetched = self._fetch(ask, create)
        erased = False
        with self._lock:
            for key_id in ask:
                key = fetched.get(key_id)
                held = self._known.get(key_id)
                # An id without a key when asked to create one, or that had one, is erased;
                # otherwise it may simply have sealed nothing yet: not remembered.
                if key is not None or create or (held is not None and held[0] is not None):
                    erased |= key is None and held is not None and held[0] is not None
                    self._known[key_id] = (key, now)
                if key is not None:
                    out[key_id] = key
            if len(self._known) > 200_000:
                self._known.clear()
        if erased and self._on_erased is not None:
            self._on_erased()
        return out

    def cached(self, key_ids: Collection[str]) -> dict[str, bytes] | None:
        """What ``keys`` would answer, from memory alone; None when any id must be asked for (a
        caller on an event loop then asks in a thread rather than wait on the call)."""
        now = self._clock()
        out: dict[str, bytes] = {}
        with self._lock:
            for key_id in key_ids:
                known = self._known.get(key_id)
                if known is None or (known[0] is not None and now - known[1] >= self.ttl):
                    return None
                if known[0] is not None:
                    out[key_id] = known[0]
        return out

    def forget(self, key_ids: Iterable[str]) -> None:
        with self._lock:
            for key_id in key_ids:
                self._known[key_id] = (None, self._clock())

    def also_on_erased(self, callback: Callable[[], None]) -> None:
        earlier = self._on_erased

        def both() -> None:
            if earlier is not None:
                earlier()
            callback()

        self._on_erased = both

    def revalidate(self) -> int:
        """Ask again for every key held; how many are gone (``on_erased`` is called if any)."""
        with self._lock:
            held = sorted(key_id for key_id, (key, _) in self._known.items() if key is not None)
        gone = 0
        for start in range(0, len(held), 1000):
            chunk = held[start:start + 1000]
            fetched = self._fetch(chunk, False)
            now = self._clock()
            with self._lock:
                for key_id in chunk:
                    key = fetched.get(key_id)
                    gone += key is None
                    self._known[key_id] = (key, now)
        if gone and self._on_erased is not None:
            self._on_erased()
        return gone

    def _start_watching(self) -> None:
        with self._lock:
            if self._watcher is not None:
                return
            self._watcher = threading.Thread(target=self._watch, name="personal-keys-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop revalidating: the application closing has closed, or will close, the store it
        asks; a round already asking finishes, and says nothing if that fails."""
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(self.ttl):
            try:
                self.revalidate()
            except Exception:  # the key service away: asked again next round
                if not self._closed.is_set():
                    log.warning("could not revalidate the personal data keys", exc_info=True)


def key_cache_seconds() -> float:
    return float(os.environ.get("WC_PERSONAL_KEY_CACHE_SECONDS") or 30)


class KeysUnavailable(DomainError):
    """The key service did not answer: UNAVAILABLE, the caller may retry (fails closed)."""

    code = grpc.StatusCode.UNAVAILABLE


class KeysRefused(RuntimeError):
    """The key service answered the ask with an error that asking again will not change (a
    refused argument, a token it does not accept, a fault of its own): not retried for ever, so a
    processor dead-letters the batch's records after its attempts and its partitions move on."""


# The key service's answers that say it is away or slow, not that the ask is wrong: the same ask
# succeeds once it is back. DEADLINE_EXCEEDED too: an ask names at most MAX_KEY_IDS_PER_CALL ids,
# a lookup of milliseconds, so a missed deadline means an overloaded or stalled service (a lock
# wait, a pause, a restart), never a request that could not be served; parking the records for it
# would empty a partition into the dead-letter topic during a slow minute.
TRANSIENT_KEY_ERRORS = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


# The most key ids one GetPersonalDataKeys call may name (the profiles service refuses more).
MAX_KEY_IDS_PER_CALL = 1000


class RemoteKeyRing:
    """The profiles service's keys, asked over gRPC with this process's service token
    (``PersonalDataService.GetPersonalDataKeys``, services only), cached (``CachedKeys``)."""

    def __init__(self, settings: Any, caller: str, on_erased: Callable[[], None] | None = None):
        from .client import ServiceCredentials

        self.settings = settings
        self._credentials = ServiceCredentials(settings, caller)
        self._stub: Any = None
        self._lock = threading.Lock()
        self._cache = CachedKeys(self._fetch, key_cache_seconds(), on_erased=on_erased)

    def _keys_stub(self) -> Any:
        from .client import channel
        from .profiles.v1 import personal_data_pb2_grpc

        with self._lock:
            if self._stub is None:
                self._stub = personal_data_pb2_grpc.PersonalDataServiceStub(channel(self.settings, "profiles"))
            return self._stub

    def _fetch(self, key_ids: Collection[str], create: bool) -> dict[str, bytes]:
        from .profiles.v1 import personal_data_pb2

        # A batch of a projection (or a reader of a whole topic) may need more keys than one
        # call may ask for: ask in slices of the most the service takes.
        wanted, found = sorted(key_ids), {}
        for start in range(0, len(wanted), MAX_KEY_IDS_PER_CALL):
            try:
                response = self._keys_stub().GetPersonalDataKeys(
                    personal_data_pb2.GetPersonalDataKeysRequest(key_ids=wanted[start:start + MAX_KEY_IDS_PER_CALL], create=create),
                    metadata=self._credentials.metadata(), timeout=10)
            except grpc.RpcError as error:
                status = error.code()
                if status in TRANSIENT_KEY_ERRORS:
                    raise KeysUnavailable(f"the personal data keys could not be read: {status.name}", field="name") from None
                details = error.details() if hasattr(error, "details") else ""
                raise KeysRefused(f"the profiles service refused the personal data keys: {status.name}: {details}") from None
            found.update((key.key_id, key.key) for key in response.keys)
        return found

    def keys(self, key_ids: Collection[str], create: bool = False) -> dict[str, bytes]:
        return self._cache.keys(key_ids, create)

    def cached(self, key_ids: Collection[str]) -> dict[str, bytes] | None:
        return self._cache.cached(key_ids)

    def forget(self, key_ids: Iterable[str]) -> None:
        self._cache.forget(key_ids)

    def also_on_erased(self, callback: Callable[[], None]) -> None:
        self._cache.also_on_erased(callback)

    def close(self) -> None:
        self._cache.close()


# --- events -------------------------------------------------------------------------------------
def seal_key_ids(event_type: str, state: Mapping[str, Any], aggregate_id: str, actor: str) -> set[str]:
    rule = personal(event_type)
    if rule is None or not any(state.get(f) for f in rule.fields):
        return set()
    return {rule.key_id(state, aggregate_id, actor)}


def _get(container: Any, field: str) -> Any:
    # A state's dict (or a nested element's) or a proto message.
    return container.get(field) if isinstance(container, Mapping) else getattr(container, field, "")


def nested_key_ids(event_type: str, state: Mapping[str, Any]) -> set[str]:
    """The keys the nested elements of an event will be sealed with (fetched before it is
    stored; not required: an erased author's element is written as its tombstone)."""
    rule = personal(event_type)
    if rule is None:
        return set()
    return {person_key_id(str(_get(element, author))) for name, fields, author in rule.nested for element in (state.get(name) or ())
            if _get(element, author) and any(_get(element, f) for f in fields)}


def _seal_nested(rule: Personal, out: dict[str, Any], ring: KeyRing) -> None:
    wanted: dict[str, None] = {}
    for name, fields, author in rule.nested:
        for element in out.get(name) or ():
            if isinstance(element, Mapping) and element.get(author) and any(isinstance(element.get(f), str) and element.get(f) for f in fields):
                wanted[person_key_id(str(element[author]))] = None
    # Made if new; an erased author's key is never made again: their element gets the tombstone.
    keys = ciphers(ring.keys(list(wanted), create=True)) if wanted else {}
    for name, fields, author in rule.nested:
        elements = out.get(name)
        if not elements:
            continue
        sealed_elements = []
        for element in elements:
            if isinstance(element, Mapping) and element.get(author):
                element = dict(element)
                key_id = person_key_id(str(element[author]))
                for field in fields:
                    value = element.get(field)
                    if isinstance(value, str) and value and not is_sealed(value):
                        label = f"{name}.{field}"
                        element[field] = seal(key_id, keys[key_id], label, value) if key_id in keys else tombstone(label)
            sealed_elements.append(element)
        out[name] = sealed_elements


def seal_state(event_type: str, state: dict[str, Any], aggregate_id: str, actor: str, ring: KeyRing) -> dict[str, Any]:
    """A copy of an event's state with its personal fields sealed (a list field element by
    element, a nested element's fields with its own author's key); the state itself if the
    event has none."""
    rule = personal(event_type)
    if rule is None:
        return state
    key_id = rule.key_id(state, aggregate_id, actor)
    keys: dict[str, AESGCM] = {}

    def sealed(field: str, value: Any) -> Any:
        if not isinstance(value, str) or not value or is_sealed(value):
            return value
        if not keys:
            keys.update(ciphers(require_keys(ring, [key_id])))
        return seal(key_id, keys[key_id], field, value)

    out = dict(state)
    for field in rule.fields:
        value = out.get(field)
        out[field] = [sealed(field, v) for v in value] if isinstance(value, (list, tuple)) else sealed(field, value)
    if rule.nested:
        _seal_nested(rule, out, ring)
    return out


def _values(value: Any) -> list[Any]:
    """A field's values: a list field's elements, else the one value. A published payload's list
    is a protobuf repeated container, registered as a ``Sequence`` but without an ``__iter__``
    attribute (upb): asking ``hasattr(value, "__iter__")`` took it for one value, so the keys of a
    list's sealed elements were asked for only when a string field of the batch needed the same."""
    return list(value) if not isinstance(value, str) and isinstance(value, Iterable) else [value]


def sealed_key_ids(event_type: str, values: Mapping[str, Any] | Any) -> set[str]:
    """The key ids an event's sealed fields need (``values``: a state dict or a proto message)."""
    rule = personal(event_type)
    if rule is None:
        return set()
    found = {key_id_of(v) for f in rule.fields for v in _values(_get(values, f)) if is_sealed(v)}
    for name, fields, _ in rule.nested:
        found |= {key_id_of(v) for element in (_get(values, name) or ()) for f in fields if is_sealed(v := _get(element, f))}
    return found


def _opened(field: str, value: Any, keys: Mapping[str, Key], memo: dict[tuple[str, str], str] | None = None) -> Any:
    if isinstance(value, str):
        return _unsealed(value, field, keys, memo)
    # A list: its elements opened, the erased ones left out (a tag has no tombstone).
    return [opened for opened in (_unsealed(v, field, keys, memo) for v in value) if opened]


def _unsealed(value: str, field: str, keys: Mapping[str, Key], memo: dict[tuple[str, str], str] | None) -> str:
    """``unseal``, answered from ``memo`` ((sealed value, field) -> plain) when it was opened
    there before: each sealing has a nonce of its own, so the pair names one plain value."""
    if memo is None:
        return unseal(value, field, keys)
    plain = memo.get((value, field))
    if plain is None:
        plain = memo[(value, field)] = unseal(value, field, keys)
    return plain


def open_state(event_type: str, state: dict[str, Any], ring: KeyRing) -> None:
    """Open an event's sealed fields in place (tombstones where the key is gone)."""
    needed = sealed_key_ids(event_type, state)
    if not needed:
        return
    keys = ciphers(ring.keys(needed))
    rule = personal(event_type)
    for field in rule.fields:  # type: ignore[union-attr]
        if field in state:
            state[field] = _opened(field, state[field], keys)
    for name, fields, _ in rule.nested:  # type: ignore[union-attr]
        if state.get(name):
            state[name] = [{**element, **{f: unseal(element[f], f"{name}.{f}", keys) for f in fields if is_sealed(element.get(f))}}
                           if isinstance(element, Mapping) else element for element in state[name]]


def open_payload(event_type: str, payload: Any, keys: Mapping[str, Key], memo: dict[tuple[str, str], str] | None = None) -> None:
    """Open a published payload's sealed fields in place, with keys already fetched; ``memo``
    (see ``_unsealed``) lets the readers of one batch decrypt each value once between them."""
    rule = personal(event_type)
    if rule is None:
        return
    for field in rule.fields:
        value = getattr(payload, field, None)
        if isinstance(value, str):
            if is_sealed(value):
                setattr(payload, field, _unsealed(value, field, keys, memo))
        elif value is not None and any(is_sealed(v) for v in value):
            opened = _opened(field, value, keys, memo)
            del value[:]
            value.extend(opened)
    for name, fields, _ in rule.nested:
        for element in getattr(payload, name, ()):
            for field in fields:
                value = getattr(element, field)
                if is_sealed(value):
                    setattr(element, field, _unsealed(value, f"{name}.{field}", keys, memo))


# --- readers of the topics (projections, tools) ----------------------------------------------------
ERASURE_EVENT = "watercooler.profiles.v1.ProfileErased"
_shared: dict[tuple[str, str, str], KeyRing] = {}
_shared_lock = threading.Lock()


def shared_key_ring(settings: Any, caller: str = "projections", on_erased: Callable[[], None] | None = None) -> KeyRing:
    """One key ring (and cache) per process, profiles address and namespace, shared by its
    projections. ``on_erased``: also told when a key it holds is erased (``CachedKeys``)."""
    where = (settings.grpc_address("profiles"), settings.namespace, caller)
    with _shared_lock:
        if where not in _shared:
            _shared[where] = RemoteKeyRing(settings, caller)
        ring = _shared[where]
    if on_erased is not None and isinstance(ring, RemoteKeyRing):
        ring.also_on_erased(on_erased)
    return ring


def install_key_ring(settings: Any, ring: KeyRing, caller: str = "projections") -> None:
    """Use ``ring`` where ``shared_key_ring`` would ask the profiles service (a tool or test that
    holds a store's keys itself)."""
    with _shared_lock:
        _shared[(settings.grpc_address("profiles"), settings.namespace, caller)] = ring


def erased_key_ids(event: Any) -> list[str]:
    """The key ids a ProfileErased event destroyed: the profile's and the employee's."""
    return [event.envelope.aggregate_id, *([event.payload.employee_id] if event.payload.employee_id else [])]


def forget_erased(settings: Any, event: Any) -> None:
    forget = getattr(shared_key_ring(settings), "forget", None)
    if forget is not None:
        forget(erased_key_ids(event))
