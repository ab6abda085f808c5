"""Privacy-preserving indicator forms: keyed hashes and keyed MinHash sketches.

Nothing raw leaves a member. An infrastructure or identity attribute becomes
``HMAC-SHA256(epoch key, kind ‖ 0x00 ‖ normalised value)`` truncated to 128 bits; a prompt
scaffold becomes a keyed MinHash sketch. The epoch key is derived with HKDF-SHA256 from the
sharing group's secret, the group name and the epoch id (an ISO week), so

* only holders of the group secret can compute (and so match) a digest — an outsider cannot
  test a guessed IP or e-mail domain against a published digest, as it could an unkeyed
  SHA-256;
* digests change every epoch: one epoch's indicators cannot be linked to another's without
  the secret, and a leaked epoch key exposes one week only.

Formats are pinned by name (``KEYED_HASH_ALG``, ``SKETCH_FORMAT``) and travel in every
indicator, so a change of format is a new name, never a silent re-interpretation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from distillwatch.share.errors import IntelError

KEYED_HASH_ALG: Final = "hmac-sha256-128"
DIGEST_BYTES: Final = 16
SKETCH_FORMAT: Final = "minhash-blake2b-v1"
"""64 permutations ``(a·h + b) mod (2³¹−1)`` of a keyed 8-byte BLAKE2b of each shingle;
shingles are the character 5-grams of one scaffold (a cut of a folded prompt edge)."""
SKETCH_PERMS: Final = 64
SKETCH_BANDS: Final = 16
"""LSH bands (of ``SKETCH_PERMS // SKETCH_BANDS`` rows) used to look sketches up."""
SHINGLE: Final = 5
SKETCH_EDGE: Final = 120
"""Most characters of a prompt's folded head or tail a scaffold can span."""
MIN_SCAFFOLD: Final = 16
"""Fewest characters a shared scaffold spans (shorter ones are everyday phrases)."""
KINDS: Final = ("ip", "net", "card", "email_domain", "user_agent")
"""Attribute kinds a keyed hash can stand for (``normalise`` says how each is written)."""
_SALT: Final = b"distillwatch-intel-v1"
_P31: Final = (1 << 31) - 1
_FOLD = str.maketrans("123456789", "000000000")


def epoch_id(t: datetime) -> str:
    """The key epoch of a moment: its ISO week (keys rotate weekly).

    >>> epoch_id(datetime(2026, 11, 23, 12, tzinfo=UTC))
    '2026-W48'
    """
    year, week, _ = t.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def epoch_start(epoch: str) -> datetime:
    """Monday 00:00 UTC of an epoch id; ``IntelError`` for a malformed one.

    >>> epoch_start("2026-W48").isoformat()
    '2026-11-23T00:00:00+00:00'
    """
    try:
        year, week = epoch.split("-W")
        return datetime.fromisocalendar(int(year), int(week), 1).replace(tzinfo=UTC)
    except ValueError:
        raise IntelError(f"not an epoch id (YYYY-Www): {epoch!r}") from None


def epoch_end(epoch: str) -> datetime:
    return epoch_start(epoch) + timedelta(days=7)


def derive_key(group_secret: bytes, group: str, epoch: str, purpose: str) -> bytes:
    """A 32-byte key for one group, epoch and purpose (``hash`` or ``sketch``), by HKDF-SHA256.

    >>> k = derive_key(b"s" * 32, "g", "2026-W48", "hash")
    >>> len(k), k == derive_key(b"s" * 32, "g", "2026-W49", "hash")
    (32, False)
    """
    if len(group_secret) < 16:
        raise IntelError("the group secret must be at least 16 bytes")
    epoch_start(epoch)  # validates
    info = f"{group}|{epoch}|{purpose}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(group_secret)


def normalise(kind: str, value: str) -> str | None:
    """The canonical text of an attribute before hashing; None when it is not one.

    >>> normalise("ip", "::ffff:203.0.113.9"), normalise("net", "203.0.113.9")
    ('203.0.113.9', '203.0.113.0/24')
    >>> normalise("net", "2001:db8:abcd:12::1"), normalise("email_domain", " @Example.COM ")
    ('2001:db8:abcd::/48', 'example.com')
    """
    v = value.strip()
    if not v:
        return None
    if kind in ("ip", "net"):
        try:
            if "/" in v:
                net = ipaddress.ip_network(v, strict=False)
                return str(net) if kind == "net" else None
            addr = ipaddress.ip_address(v.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if kind == "ip":
            return str(addr)
        bits = 24 if addr.version == 4 else 48
        return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))
    if kind == "email_domain":
        return v.lstrip("@").lower().rstrip(".") or None
    if kind == "user_agent":
        return " ".join(v.split())
    if kind == "card":
        return v
    raise IntelError(f"unknown indicator kind {kind!r}; one of: {', '.join(KINDS)}")


def fold(text: str) -> str:
    """Lower-case, numbers folded to ``0``, whitespace collapsed (a template's fixed part).

    >>> fold("  Item 12:\\n\\nSolve   x+3=7 ")
    'item 0: solve x+0=0'
    """
    folded = text.lower().translate(_FOLD)
    while "00" in folded:
        folded = folded.replace("00", "0")
    return " ".join(folded.split())


def edge_text(prompt: str, edge: str) -> str:
    """The folded head or tail of a prompt, at most ``SKETCH_EDGE`` characters.

    >>> edge_text("Please help:  Solve 12+4", "head"), edge_text("Q 1. Answer briefly.", "tail")
    ('please help: solve 0+0', 'q 0. answer briefly.')
    """
    if edge == "head":
        return fold(prompt[: SKETCH_EDGE * 3])[:SKETCH_EDGE]
    return fold(prompt[-SKETCH_EDGE * 3 :])[-SKETCH_EDGE:]


def scaffold_cuts(text: str, edge: str) -> list[int]:
    """Lengths at which a folded edge may be cut into a scaffold: word boundaries, at least
    ``MIN_SCAFFOLD`` characters (a head is cut before a space, a tail after one).

    >>> scaffold_cuts("answer the question below: what is 0+0?", "head")
    [19, 26, 31, 34]
    >>> scaffold_cuts("what is 0+0? reply in one word", "tail")
    [25, 22, 17]
    """
    n = len(text)
    if edge == "head":
        return [i for i in range(MIN_SCAFFOLD, n) if text[i] == " "]
    return [n - 1 - i for i in range(n) if text[i] == " " and n - 1 - i >= MIN_SCAFFOLD]


def cut(text: str, edge: str, length: int) -> str:
    """The scaffold of ``length`` characters at the ``edge`` of a folded edge text."""
    return text[:length] if edge == "head" else text[len(text) - length :]


@dataclass(frozen=True, slots=True)
class Sketch:
    """A keyed MinHash sketch (``SKETCH_PERMS`` 31-bit values)."""

    values: tuple[int, ...]

    def encode(self) -> str:
        """Base64 of the values as big-endian uint32 (the indicator's wire form)."""
        return base64.b64encode(np.asarray(self.values, dtype=">u4").tobytes()).decode()

    @classmethod
    def decode(cls, text: str) -> Sketch:
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raise IntelError("sketch is not base64") from None
        if len(raw) != 4 * SKETCH_PERMS:
            raise IntelError(f"sketch must hold {SKETCH_PERMS} values, not {len(raw) // 4}")
        return cls(tuple(int(x) for x in np.frombuffer(raw, dtype=">u4")))

    def similarity(self, other: Sketch) -> float:
        """Estimated Jaccard similarity of the two shingle sets."""
        same = sum(a == b for a, b in zip(self.values, other.values, strict=True))
        return same / SKETCH_PERMS

    def bands(self) -> list[bytes]:
        """LSH band keys: two sketches sharing one are candidates for a match."""
        rows = SKETCH_PERMS // SKETCH_BANDS
        v = self.values
        return [
            i.to_bytes(1, "big") + np.asarray(v[i * rows : (i + 1) * rows], ">u4").tobytes()
            for i in range(SKETCH_BANDS)
        ]


class GroupKeyer:
    """Keyed digests and sketches for one sharing group and epoch.

    >>> k = GroupKeyer(b"s" * 32, "g", "2026-W48")
    >>> k.digest("ip", "203.0.113.9") == k.digest("ip", "::ffff:203.0.113.9")
    True
    >>> len(k.digest("ip", "203.0.113.9") or "")
    32
    """

    def __init__(self, group_secret: bytes, group: str, epoch: str) -> None:
        self.group = group
        self.epoch = epoch
        self._hash_key = derive_key(group_secret, group, epoch, "hash")
        sketch_key = derive_key(group_secret, group, epoch, "sketch")
        self._shingle_key = sketch_key
        perms = hashlib.blake2b(sketch_key, digest_size=64, person=b"dw-perms").digest()
        seed = int.from_bytes(perms, "big")
        rng = np.random.Generator(np.random.PCG64(seed))
        self._a = rng.integers(1, _P31, size=SKETCH_PERMS, dtype=np.uint64)
        self._b = rng.integers(0, _P31, size=SKETCH_PERMS, dtype=np.uint64)

    def digest_raw(self, kind: str, normalised: str) -> bytes:
        """The 16-byte digest of an already normalised value (the matcher's hot path)."""
        msg = f"{kind}\x00{normalised}".encode()
        return hmac.digest(self._hash_key, msg, "sha256")[:DIGEST_BYTES]

    def digest(self, kind: str, value: str) -> str | None:
        """Hex digest of an attribute, or None when ``value`` is not a valid ``kind``."""
        norm = normalise(kind, value)
        return None if norm is None else self.digest_raw(kind, norm).hex()

    def _permuted(self, text: str) -> np.ndarray:
        """Permuted keyed hashes of the text's shingles: (perms, shingles), in text order."""
        key = self._shingle_key
        n = max(1, len(text) - SHINGLE + 1)
        h = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(text[i : i + SHINGLE].encode(), key=key,
                                               digest_size=8).digest()) % _P31
                for i in range(n)
            ),
            dtype=np.uint64,
            count=n,
        )  # fmt: skip
        return (self._a[:, None] * h[None, :] + self._b[:, None]) % _P31

    def sketch(self, scaffold: str) -> Sketch:
        """The keyed MinHash of one scaffold."""
        return Sketch(tuple(int(x) for x in self._permuted(scaffold).min(axis=1)))

    def cut_sketches(self, text: str, edge: str, lengths: Iterable[int]) -> dict[int, Sketch]:
        """Sketches of the ``edge`` cuts of a folded edge text at every length, in one pass.

        >>> k = GroupKeyer(b"s" * 32, "g", "2026-W48")
        >>> t = "answer the question below: what is 0+0?"
        >>> k.cut_sketches(t, "head", [26])[26] == k.sketch(t[:26])
        True
        >>> k.cut_sketches(t, "tail", [12])[12] == k.sketch(t[-12:])
        True
        """
        want = [n for n in lengths if SHINGLE <= n <= len(text)]
        if not want:
            return {}
        perm = self._permuted(text)
        if edge != "head":
            perm = perm[:, ::-1]
        running = np.minimum.accumulate(perm, axis=1)
        return {n: Sketch(tuple(int(x) for x in running[:, n - SHINGLE])) for n in want}


def digests(keyer: GroupKeyer, kind: str, values: Iterable[str]) -> set[str]:
    """Hex digests of every valid value (invalid ones are skipped)."""
    out = set()
    for v in values:
        d = keyer.digest(kind, v)
        if d is not None:
            out.add(d)
    return out
