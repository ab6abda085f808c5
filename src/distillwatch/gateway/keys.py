"""API keys → accounts, from a keys file (YAML or JSON).

The file maps each key to an account id, or to ``{account_id, tier, key_id}``::

    sk-live-alice-0001: acct-alice
    sk-live-bob-0001: {account_id: acct-bob, tier: enterprise, key_id: bob-ci}

``key_id`` is what the exchange log records as ``api_key_id`` (never the key itself); by
default it is a short hash of the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from distillwatch.errors import ConfigError
from distillwatch.records import Account


@dataclass(frozen=True)
class KeyEntry:
    account_id: str
    key_id: str
    tier: str | None = None


def key_id(key: str) -> str:
    """A stable, non-reversible short id for a key.

    >>> key_id("sk-test")
    'key-f3abf2a6cc4f'
    """
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class KeyRing:
    """Look up the account behind an ``Authorization: Bearer`` key.

    Built from keys (the keys file) or from their SHA-256 digests only (the PostgreSQL
    table: ``from_hashes``), in which case a presented key is hashed to be looked up.
    """

    def __init__(self, entries: dict[str, KeyEntry]) -> None:
        self._entries = entries
        self._by_hash: dict[str, KeyEntry] | None = None
        self._hashed = False

    @classmethod
    def from_hashes(cls, by_hash: dict[str, KeyEntry]) -> KeyRing:
        """A ring that knows only each key's SHA-256 (lower-case hex).

        >>> ring = KeyRing.from_hashes({hashlib.sha256(b"sk-test").hexdigest(): KeyEntry("a", "k")})
        >>> ring.lookup("sk-test").account_id, ring.lookup("sk-other")
        ('a', None)
        """
        ring = cls({})
        ring._by_hash = dict(by_hash)
        ring._hashed = True
        return ring

    def replace(self, other: KeyRing) -> None:
        """Take ``other``'s keys (a reload), in place: holders of this ring see them."""
        self._entries, self._by_hash, self._hashed = other._entries, other._by_hash, other._hashed

    def lookup(self, key: str) -> KeyEntry | None:
        if self._hashed:
            return self.lookup_hash(hashlib.sha256(key.encode()).hexdigest())
        return self._entries.get(key)

    def lookup_hash(self, sha256_hex: str) -> KeyEntry | None:
        """The entry whose key has this SHA-256 (hex), as LiteLLM reports its virtual keys.

        >>> KeyRing({"sk-test": KeyEntry("a", "k")}).lookup_hash(
        ...     hashlib.sha256(b"sk-test").hexdigest()).account_id
        'a'
        """
        if self._by_hash is None:
            self._by_hash = {
                hashlib.sha256(k.encode()).hexdigest(): e for k, e in self._entries.items()
            }
        return self._by_hash.get(sha256_hex.lower())

    def _all(self) -> list[KeyEntry]:
        if self._hashed and self._by_hash is not None:
            return list(self._by_hash.values())
        return list(self._entries.values())

    def accounts(self) -> dict[str, Account]:
        """One ``Account`` per account id, with the tier the keys give it."""
        out: dict[str, Account] = {}
        for e in self._all():
            if e.account_id not in out or e.tier is not None:
                out[e.account_id] = Account(account_id=e.account_id, tier=e.tier)
        return out

    def __len__(self) -> int:
        return len(self._all())


def load_keys(path: Path) -> KeyRing:
    """Read and check a keys file; problems are one-line ``ConfigError``s naming the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("keys file not found", source=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read keys file: {e}", source=path) from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"invalid keys file: {' '.join(str(e).split())}", source=path) from None
    if not isinstance(data, dict) or not data:
        raise ConfigError("keys file must map API keys to accounts", source=path)
    entries: dict[str, KeyEntry] = {}
    for key, value in data.items():
        entries[str(key)] = _entry(str(key), value, path)
    return KeyRing(entries)


def _entry(key: str, value: Any, path: Path) -> KeyEntry:
    shown = key_id(key)  # never echo a secret into an error message
    if len(key) < 8:
        raise ConfigError("API keys must be at least 8 characters", source=path, key=shown)
    if isinstance(value, str) and value:
        return KeyEntry(account_id=value, key_id=shown)
    if not isinstance(value, dict):
        raise ConfigError(
            "must be an account id or {account_id, tier, key_id}", source=path, key=shown
        )
    unknown = set(value) - {"account_id", "tier", "key_id"}
    if unknown:
        raise ConfigError(f"unknown field(s) {', '.join(sorted(unknown))}", source=path, key=shown)
    account = value.get("account_id")
    if not isinstance(account, str) or not account:
        raise ConfigError("account_id must be a non-empty string", source=path, key=shown)
    tier, kid = value.get("tier"), value.get("key_id", shown)
    if tier is not None and not isinstance(tier, str):
        raise ConfigError("tier must be a string", source=path, key=shown)
    if not isinstance(kid, str) or not kid:
        raise ConfigError("key_id must be a non-empty string", source=path, key=shown)
    return KeyEntry(account_id=account, key_id=kid, tier=tier)
