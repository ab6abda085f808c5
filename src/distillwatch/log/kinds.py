"""The four record kinds of the exchange-log spec and their Parquet shapes.

Nested objects (an exchange's ``request``, a verdict's ``evidence``) are stored in Parquet
as JSON text columns; readers also accept a native struct column for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import pyarrow as pa

from distillwatch.records import Account, Exchange, Label, Verdict

_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class RecordKind:
    """One record type of the spec: its Struct, Parquet schema and JSON-text columns."""

    name: str
    type: type[msgspec.Struct]
    schema: pa.Schema
    json_columns: frozenset[str] = frozenset()

    @property
    def required(self) -> frozenset[str]:
        """Fields without a default: a file must have these columns / keys."""
        info = msgspec.inspect.type_info(self.type)
        assert isinstance(info, msgspec.inspect.StructType)
        return frozenset(f.name for f in info.fields if f.required)


EXCHANGES = RecordKind(
    "exchanges",
    Exchange,
    pa.schema(
        [
            ("id", pa.string()),
            ("ts", _TS),
            ("account_id", pa.string()),
            ("api_key_id", pa.string()),
            ("ip", pa.string()),
            ("user_agent", pa.string()),
            ("model", pa.string()),
            ("endpoint", pa.string()),
            ("request", pa.string()),
            ("response_text", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("reasoning_tokens", pa.int64()),
            ("status", pa.int32()),
            ("latency_ms", pa.float64()),
        ]
    ),
    frozenset({"request"}),
)
ACCOUNTS = RecordKind(
    "accounts",
    Account,
    pa.schema(
        [
            ("account_id", pa.string()),
            ("created_at", _TS),
            ("org_id", pa.string()),
            ("email_domain", pa.string()),
            ("payment_fingerprint", pa.string()),
            ("country", pa.string()),
            ("tier", pa.string()),
            ("verified", pa.bool_()),
        ]
    ),
)
LABELS = RecordKind(
    "labels",
    Label,
    pa.schema(
        [
            ("account_id", pa.string()),
            ("label", pa.string()),
            ("campaign_id", pa.string()),
            ("profile", pa.string()),
        ]
    ),
)
VERDICTS = RecordKind(
    "verdicts",
    Verdict,
    pa.schema(
        [
            ("account_id", pa.string()),
            ("score", pa.float64()),
            ("action", pa.string()),
            ("campaign_id", pa.string()),
            ("first_action_ts", _TS),
            ("exchanges_before_action", pa.int64()),
            ("reasons", pa.list_(pa.string())),
            ("evidence", pa.string()),
        ]
    ),
    frozenset({"evidence"}),
)

KINDS: dict[str, RecordKind] = {k.name: k for k in (EXCHANGES, ACCOUNTS, LABELS, VERDICTS)}
