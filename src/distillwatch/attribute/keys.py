"""Typed linking keys: what two accounts of one campaign tend to share.

A key is a string ``family:value``. Families and how much one shared key says:

* ``card``: the payment fingerprint (accounts table) — campaigns pay with a few cards;
* ``signup``: email domain and the 6-hour window the account was opened in (two offset
  windows, so a burst across a boundary still shares one) — accounts opened in bulk;
* ``ip``: the exact address; ``net``: its /24 (IPv4) or /48 (IPv6) — shared proxies, servers;
* ``agent``: the user agent — one scheduler, one client;
* ``scaffold``: the edges of a prompt (its first and last ``EDGE`` characters, lower-cased,
  digits folded to ``0``, whitespace collapsed) hashed — one pipeline's templates;
* ``switch``: an account's first request to a model it had not used, by model and 2-hour
  window (two offsets) — accounts switched together after a release by one operator;
* ``sync``: a pair of accounts whose requests are mostly in bursts of many accounts
  (``signals.lockstep.Bursts``) and that met in such bursts again — the workers of one
  batch scheduler (SynchroTrap's repeated co-occurrence; the linker keys them, not
  ``exchange_keys``).

Keys are cheap (a few string operations per exchange) and carry no text: a scaffold key is
a 32-bit hash of the folded edge, so ``campaigns.jsonl`` can publish it as a sketch.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Final

from distillwatch.records import Account, Exchange
from distillwatch.signals.network import network_prefix
from distillwatch.signals.text import last_user_text

FAMILIES: Final[dict[str, float]] = {
    "card": 1.0,
    "signup": 0.7,
    "switch": 0.7,
    "sync": 0.7,
    "ip": 0.6,
    "net": 0.3,
    "scaffold": 0.3,
    "agent": 0.2,
}
"""Base weight of one shared key of each family (the linking graph divides it by popularity)."""

FAMILY_CAP: Final[dict[str, float]] = {
    "card": 1.0,
    "signup": 0.5,
    "switch": 0.25,
    "sync": 0.5,
    "ip": 0.35,
    "net": 0.25,
    "scaffold": 0.3,
    "agent": 0.1,
}
"""Most one family can add to an account's link to a cluster, however many keys it shares:
many chance collisions of one kind (proxy subnets) never add up to a campaign."""

MIN_UNITS: Final[dict[str, int]] = {"signup": 6, "switch": 6, "net": 3}
"""Synchrony keys count only as a burst: a few accounts opened (or switched model) in the
same window is everyday chance for a popular email domain or a new model; six or more
unrelated ones is not. A network counts from three units: a rotating proxy pool passes
through a large share of all residential networks, so one home network that also saw a
proxy exit is chance. Other families: 2."""

MIN_VARIETY: Final = 3
"""A scaffold edge counts once it was seen with this many different other edges: a template
wraps ever-new questions, while a popular prompt (many users, same text) always comes with
the same other edge and links nobody."""

STRONG: Final = frozenset({"card", "signup", "ip", "sync"})
"""Families that tie accounts to one operator by themselves (payment, sign-up, address, one
scheduler's batches: only pairs of accounts in lockstep that meet in bursts again hold
``sync`` keys);
the others (networks, clients, prompt scaffolds, model switches) only corroborate: a link
needs some strong evidence, so behavioural coincidences alone never make a campaign."""

LIFETIME_FAMILIES: Final = frozenset({"card", "signup", "switch"})
"""Families an account holds for its lifetime (known at sign-up, or a few model switches);
request keys rotate through a bounded budget instead."""

EDGE = 40
SIGNUP_WINDOW = 6 * 3600.0
SWITCH_WINDOW = 2 * 3600.0

_FOLD = str.maketrans("123456789", "000000000")


def family(key: str) -> str:
    """The family of a key.

    >>> family("net:203.0.113")
    'net'
    """
    return key[: key.index(":")]


def fold(text: str) -> str:
    """Lower-case, numbers folded to ``0``, whitespace collapsed: a template's fixed part.

    >>> fold("  Question 12:\\n\\nSolve   x+3=7 ")
    'question 0: solve x+0=0'
    """
    folded = text.lower().translate(_FOLD)
    while "00" in folded:  # a number of any length folds to one 0
        folded = folded.replace("00", "0")
    return " ".join(folded.split())


def _h(text: str) -> str:
    return f"{zlib.crc32(text.encode('utf-8', 'surrogatepass')):08x}"


def scaffold_keys(text: str, edge: int = EDGE) -> list[str]:
    """Hashed head and tail edges of a prompt (one key when the prompt is all edge).

    >>> a = scaffold_keys("Solve step by step. What is 17 + 4? Answer: $ANSWER.")
    >>> b = scaffold_keys("Solve step by step. What is 9 + 81? Answer: $ANSWER.")
    >>> a == b, len(a)
    (True, 1)
    >>> wrap = "Please reason carefully and show all intermediate steps. "
    >>> c = scaffold_keys(wrap + "How many ways can 8 rooks be placed on a chessboard?")
    >>> d = scaffold_keys(wrap + "Prove that the square root of two is irrational, twice.")
    >>> c[0] == d[0], c[1] == d[1]
    (True, False)
    """
    if len(text) <= 2 * edge:
        return [f"scaffold:{_h(fold(text))}"]
    head = fold(text[: edge * 3])[:edge]
    tail = fold(text[-edge * 3 :])[-edge:]
    return [f"scaffold:h{_h(head)}", f"scaffold:t{_h(tail)}"]


def exchange_keys(
    exchange: Exchange,
    *,
    text: bool = True,
    last_ip: str | None = None,
    last_agent: str | None = None,
) -> list[str]:
    """The per-request keys of an exchange: address, network, client and (``text``) scaffold.

    The address and client keys are left out when they are the account's last ones
    (``last_ip``, ``last_agent``): the account holds them already, and most requests come
    from where the previous one did.

    >>> from datetime import datetime, UTC
    >>> e = Exchange(id="1", ts=datetime(2026, 3, 1, tzinfo=UTC), account_id="a",
    ...              ip="203.0.113.9", model="m", user_agent="sdk/1")
    >>> exchange_keys(e)
    ['ip:203.0.113.9', 'net:203.0.113', 'agent:sdk/1']
    >>> exchange_keys(e, last_ip="203.0.113.9", last_agent="sdk/1")
    []
    """
    ip = exchange.ip
    keys = [] if ip == last_ip else [f"ip:{ip}", f"net:{network_prefix(ip)}"]
    ua = exchange.user_agent
    if ua and ua != last_agent:
        keys.append(f"agent:{ua}")
    if text:
        prompt = last_user_text(exchange.request)
        if prompt:
            keys.extend(scaffold_keys(prompt))
    return keys


def account_keys(account: Account | None) -> list[str]:
    """Sign-up keys of an account: its card, and its email domain with its sign-up window.

    >>> from datetime import datetime, UTC
    >>> a = Account(account_id="a", payment_fingerprint="pm_1", email_domain="x.io",
    ...             created_at=datetime(2026, 3, 1, 7, tzinfo=UTC))
    >>> account_keys(a)
    ['card:pm_1', 'signup:x.io:82053', 'signup:x.io:82053+']
    """
    if account is None:
        return []
    keys = []
    if account.payment_fingerprint:
        keys.append(f"card:{account.payment_fingerprint}")
    if account.email_domain and account.created_at is not None:
        t = account.created_at.timestamp()
        keys.append(f"signup:{account.email_domain}:{int(t // SIGNUP_WINDOW)}")
        shifted = int((t + SIGNUP_WINDOW / 2) // SIGNUP_WINDOW)
        keys.append(f"signup:{account.email_domain}:{shifted}+")
    return keys


def switch_keys(model: str, t: float) -> list[str]:
    """Keys of an account's first request to ``model`` at epoch seconds ``t``.

    >>> switch_keys("m-2", 7300.0)
    ['switch:m-2:1', 'switch:m-2:1+']
    """
    w = SWITCH_WINDOW
    return [f"switch:{model}:{int(t // w)}", f"switch:{model}:{int((t + w / 2) // w)}+"]


def sync_key(a: str, b: str) -> str:
    """The key two accounts in lockstep share once they met in bursts again (a hash).

    >>> sync_key("acct_1", "acct_2") == sync_key("acct_2", "acct_1")
    True
    >>> sync_key("acct_1", "acct_2")
    'sync:e646ccb52ff4981d'
    """
    lo, hi = (a, b) if a < b else (b, a)
    return f"sync:{hashlib.blake2b(f'{lo} {hi}'.encode(), digest_size=8).hexdigest()}"
