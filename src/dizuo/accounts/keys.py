"""API keys: generation, hashing, and the per-worker cache the hot path authenticates against.

The hot path never waits on the database for a known key (DESIGN §3.5): every worker holds all
active keys in memory, reloads the ones changed since its last look every
``Settings.key_refresh_seconds``, and asks the database only for a key it has never seen
(a key created a moment ago), remembering misses briefly so that junk keys cannot flood it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from dizuo.accounts.tables import ApiKey, Organization
from dizuo.config import DATA_CLASSES, GuardPolicy
from dizuo.errors import PermissionDenied
from dizuo.limits import Limit, Subject
from dizuo.store import Database

log = logging.getLogger("dizuo.accounts")

__all__ = ["SCOPES", "KeyCache", "KeyInfo", "hash_key", "new_key"]

# What a key may reach. A key made without scopes reaches everything (as keys made before scopes).
SCOPES = (
    "models",  # /v1/chat/completions, /v1/embeddings (knowledge bases call these with the key too)
    "kb:read",  # list, read, query and ask knowledge bases
    "kb:write",  # create and delete knowledge bases, add and remove documents
    "apps",  # scenario apps (the inspection auditor)
    "compute",  # compute jobs on the pools
    "sandbox",  # the data sandbox: its catalog, requests, grants and queries
)

KEY_PREFIX = "dz-"
# A reload looks back this far past the newest change it saw, so that commits from other
# replicas whose clocks lag a little are still picked up.
RELOAD_OVERLAP = dt.timedelta(seconds=5)
MISS_TTL = 1.0
MISS_CACHE_MAX = 10_000
# Keys the cache does not hold are looked up in the database (one created a moment ago by another
# process), once however many calls present the key at the same moment, and at most this many
# distinct keys a second per process: a flood of distinct made-up keys cannot turn
# into a flood of queries. Beyond it a call waits for the next second's budget (or the background
# reload, every key_refresh_seconds, which brings every new key), then is refused if still unknown.
MISS_LOOKUPS_PER_SECOND = 20


def new_key() -> str:
    """Return a fresh random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Return the stored form of *key*: keys are random, so a fast unsalted hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """Return *moment* as UTC-aware (SQLite gives naive datetimes back)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the gateway needs to know about a caller, resolved from its key."""

    key_id: str
    org_id: str
    org_name: str
    models: frozenset[str] | None  # None: every model
    data_class: str  # the higher of the key's and its organization's
    expires_at: float | None  # epoch seconds
    limits: tuple[Subject, ...] = ()  # the key's and the organization's rate limits, where set
    org_region: str | None = None
    guard: GuardPolicy | None = None  # the key's guard policy, else its organization's; None: the platform's
    scopes: frozenset[str] | None = None  # None: every scope
    serves_public: bool = False  # its organization offers generated content to the public: filed models only
    label: str | None = (
        None  # how its answers are labeled (the key's, else its organization's); None: the platform's
    )
    batch_id: str | None = None  # the key of a batch's worker: its calls are that batch's lines

    def may_use(self, alias: str) -> bool:
        """Return whether this key may call the model *alias*."""
        return self.models is None or alias in self.models

    def require(self, scope: str) -> None:
        """Raise 403 ``scope_missing`` unless this key has *scope*."""
        if self.scopes is not None and scope not in self.scopes:
            raise PermissionDenied("scope_missing", scope=scope, scopes=", ".join(sorted(self.scopes)) or "-")


def _higher(key_class: str | None, org_class: str) -> str:
    """A key may raise its organization's data class, never lower it."""
    if key_class is None or DATA_CLASSES.index(key_class) < DATA_CLASSES.index(org_class):
        return org_class
    return key_class


def _subjects(key: ApiKey, org: Organization) -> tuple[Subject, ...]:
    subjects = []
    for subject_id, limit in (
        (f"key:{key.id}", Limit(key.rpm, key.tpm, key.concurrency)),
        (f"org:{org.id}", Limit(org.rpm, org.tpm, org.concurrency)),
    ):
        if limit:
            subjects.append(Subject(subject_id, limit))
    return tuple(subjects)


def _policy(raw: dict[str, Any] | None) -> GuardPolicy | None:
    if raw is None:
        return None
    try:
        return GuardPolicy.model_validate(raw)
    except ValueError:  # written by an older version: fall back to the platform's policy, loudly
        log.error("ignoring an unreadable guard policy: %r", raw)
        return None


class KeyCache:
    """All active keys of the platform, by hash, refreshed from the database in the background."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_hash: dict[str, KeyInfo] = {}
        self._misses: dict[str, float] = {}
        self._seen_until: dt.datetime | None = None
        self._loading: dict[str, asyncio.Future[KeyInfo | None]] = {}  # lookups under way, by hash
        self._lookups = 0  # database lookups of missed keys in the current second
        self._lookup_second = 0

    def __len__(self) -> int:
        return len(self._by_hash)

    def reload(self) -> int:
        """Load keys changed since the last reload (all on the first); return how many changed."""
        query = select(ApiKey, Organization).join(Organization, ApiKey.org_id == Organization.id)
        if self._seen_until is not None:
            query = query.where(ApiKey.updated_at >= self._seen_until - RELOAD_OVERLAP)
        changed = 0
        newest = self._seen_until
        with self._db.session() as session:
            for key, org in session.execute(query):
                self._apply(key, org)
                changed += 1
                updated = aware(key.updated_at)
                if newest is None or (updated is not None and updated > newest):
                    newest = updated
        self._seen_until = newest or dt.datetime.now(dt.UTC)
        return changed

    def _apply(self, key: ApiKey, org: Organization) -> KeyInfo | None:
        if key.revoked_at is not None:
            self._by_hash.pop(key.key_hash, None)
            return None
        expires = aware(key.expires_at)
        info = KeyInfo(
            key_id=key.id,
            org_id=org.id,
            org_name=org.name,
            models=frozenset(key.models) if key.models is not None else None,
            data_class=_higher(key.data_class, org.data_class),
            org_region=org.region,
            expires_at=expires.timestamp() if expires else None,
            limits=_subjects(key, org),
            guard=_policy(key.guard if key.guard is not None else org.guard),
            scopes=frozenset(key.scopes) if key.scopes is not None else None,
            serves_public=org.serves_public,
            label=key.label or org.label,
            batch_id=key.batch_id,
        )
        self._by_hash[key.key_hash] = info
        self._misses.pop(key.key_hash, None)
        return info

    def _load_one(self, digest: str) -> KeyInfo | None:
        query = (
            select(ApiKey, Organization)
            .join(Organization, ApiKey.org_id == Organization.id)
            .where(ApiKey.key_hash == digest)
        )
        with self._db.session() as session:
            row = session.execute(query).first()
            return self._apply(row[0], row[1]) if row else None

    def _may_look_up(self, now: float) -> bool:
        """Whether a missed key may be looked up in the database now (MISS_LOOKUPS_PER_SECOND)."""
        second = int(now)
        if second != self._lookup_second:
            self._lookup_second, self._lookups = second, 0
        self._lookups += 1
        return self._lookups <= MISS_LOOKUPS_PER_SECOND

    async def lookup(self, key: str) -> KeyInfo | None:
        """Return the caller behind *key*, or None when it is unknown, revoked or expired."""
        return await self._lookup(key, waited=False)

    async def _lookup(self, key: str, *, waited: bool) -> KeyInfo | None:
        digest = hash_key(key)
        info = self._by_hash.get(digest)
        if info is None:
            now = time.monotonic()
            missed = self._misses.get(digest)
            if missed is not None and now - missed < MISS_TTL:
                return None
            loading = self._loading.get(digest)
            if loading is not None:  # the same key's lookup is under way: one query serves every call
                info = await asyncio.shield(loading)
                if info is None:
                    return None
            else:
                if not key.startswith(KEY_PREFIX):
                    return None
                if not self._may_look_up(now):
                    if waited:
                        return None
                    # Past this second's lookups: wait for the next second's, once, and look again
                    # (a background reload, or another call's lookup of the key, may bring it
                    # meanwhile). A key made a moment ago still works; a flood of made-up keys still
                    # costs at most the budget's queries a second.
                    await asyncio.sleep(1.0 - now % 1.0)
                    return await self._lookup(key, waited=True)
                loading = asyncio.ensure_future(asyncio.to_thread(self._load_one, digest))
                self._loading[digest] = loading
                loading.add_done_callback(lambda _: self._loading.pop(digest, None))
                info = await asyncio.shield(loading)
                if info is None:
                    if len(self._misses) >= MISS_CACHE_MAX:
                        self._misses.clear()
                    self._misses[digest] = now
                    return None
        if info.expires_at is not None and info.expires_at <= time.time():
            return None
        return info
