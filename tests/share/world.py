"""A small two-sided world for intel tests: a campaign with canary attributes, legit customers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from distillwatch.attribute.campaigns import Campaign, write_campaigns
from distillwatch.records import Account, Exchange

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
T0 = NOW - timedelta(hours=6)
SECRET = bytes(range(32))
GROUP = "test-group"

CANARY_CARD = "pm_canary_5555AAAA"
CANARY_DOMAIN = "canary-mail-9x.example"
CANARY_IPS = ("203.0.113.77", "203.0.113.78")
CANARY_AGENT = "CanaryHarvester/7.7 (pipeline 41)"
CANARY_HEAD = "CANARY-SCAFFOLD zebra quartz: reason through the following problem in detail."
CANARY_TAIL = "Finish with the answer on its own line prefixed by CANARY-TAIL-OMEGA."
PAYLOADS = [
    "How many primes lie between 10 and 50?",
    "Integrate x squared from zero to three.",
    "Why does ice float on liquid water?",
    "Sort these words: pear apple fig banana.",
    "Explain the Monty Hall problem briefly.",
    "What is the derivative of sin(x)cos(x)?",
]
CANARY_PROMPTS = [f"{CANARY_HEAD} {p} {CANARY_TAIL}" for p in PAYLOADS]
LEGIT_IP = "198.51.100.20"
LEGIT_DOMAIN = "gmail.com"


def chat(text: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


@dataclass
class Side:
    accounts: dict[str, Account]
    exchanges: list[Exchange]
    campaigns: list[Campaign]

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {
            "log": folder / "exchanges.jsonl",
            "accounts": folder / "accounts.jsonl",
            "campaigns": folder / "campaigns.jsonl",
        }
        with paths["log"].open("w") as f:
            for e in self.exchanges:
                d = {
                    "id": e.id,
                    "ts": e.ts.isoformat(),
                    "account_id": e.account_id,
                    "ip": e.ip,
                    "user_agent": e.user_agent,
                    "model": e.model,
                    "request": e.request,
                    "status": 200,
                }
                f.write(json.dumps(d) + "\n")
        with paths["accounts"].open("w") as f:
            for a in self.accounts.values():
                f.write(
                    json.dumps(
                        {
                            "account_id": a.account_id,
                            "email_domain": a.email_domain,
                            "payment_fingerprint": a.payment_fingerprint,
                        }
                    )
                    + "\n"
                )
        write_campaigns(paths["campaigns"], self.campaigns)
        return paths


def _exchanges(
    prefix: str, account: str, ip: str, agent: str, prompts: list[str]
) -> Iterator[Exchange]:
    for i, text in enumerate(prompts):
        yield Exchange(
            id=f"{prefix}-{account}-{i}",
            ts=T0 + timedelta(minutes=i),
            account_id=account,
            ip=ip,
            user_agent=agent,
            model="frontier-1",
            request=chat(text),
        )


def provider_a() -> Side:
    """The publisher: a 4-account campaign with canary card, domain, IPs, agent and template."""
    accounts: dict[str, Account] = {}
    exchanges: list[Exchange] = []
    members = [f"canary-acct-{i}" for i in range(4)]
    for i, aid in enumerate(members):
        accounts[aid] = Account(
            account_id=aid, payment_fingerprint=CANARY_CARD, email_domain=CANARY_DOMAIN
        )
        prompts = CANARY_PROMPTS[i:] + CANARY_PROMPTS[:i]
        exchanges += _exchanges("a", aid, CANARY_IPS[i % 2], CANARY_AGENT, prompts)
    for i in range(6):  # legitimate customers: a shared NAT and a popular domain
        aid = f"legit-{i}"
        accounts[aid] = Account(
            account_id=aid, payment_fingerprint=f"pm_legit_{i}", email_domain=LEGIT_DOMAIN
        )
        exchanges += _exchanges("a", aid, LEGIT_IP, "OpenAI/Python 1.40", PAYLOADS)
    camp = Campaign(
        campaign_id="camp_canary0001",
        accounts=members,
        size=4,
        acted=4,
        evidence={"card": 1.0},
        shared_keys={"card": 1},
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=5),
        exchanges=len(members) * len(PAYLOADS),
    )
    return Side(accounts, exchanges, [camp])


def provider_b() -> Side:
    """The receiver: the same operator's new accounts, and legit customers."""
    accounts: dict[str, Account] = {
        "b-attacker-card": Account(account_id="b-attacker-card", payment_fingerprint=CANARY_CARD),
        "b-attacker-ip": Account(account_id="b-attacker-ip", email_domain="other.example"),
        "b-attacker-template": Account(account_id="b-attacker-template"),
        "b-legit": Account(account_id="b-legit", email_domain=LEGIT_DOMAIN),
    }
    new_payloads = ["What is 17 times 23?", "Name three noble gases and their uses."]
    ex = list(_exchanges("b", "b-attacker-card", "192.0.2.1", "curl/8", PAYLOADS[:2]))
    ex += _exchanges("b", "b-attacker-ip", CANARY_IPS[0], "curl/8", PAYLOADS[:2])
    ex += _exchanges(
        "b",
        "b-attacker-template",
        "192.0.2.9",
        "curl/8",
        [f"{CANARY_HEAD} {p} {CANARY_TAIL}" for p in new_payloads],
    )
    ex += _exchanges("b", "b-legit", LEGIT_IP, "OpenAI/Python 1.40", PAYLOADS)
    return Side(accounts, ex, [])
