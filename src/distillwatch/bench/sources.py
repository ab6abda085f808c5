"""Real prompts for the simulator, read from ``shared/data`` or the small packaged sample.

Every source becomes a list of ``Conversation``: the user turns a person (kind A) or a
distillation pipeline (kind B) sent, with the assistant turns where the source has them.
``find_data_dir`` looks in ``$DISTILLWATCH_DATA``, then ``shared/data`` beside or above the
working directory; without it the generator falls back to ``sample/`` (permissively licensed
excerpts, see ``sample/SOURCES.md``).

Every source is split into ``dev`` and ``test`` (see ``split_of``): the benchmark tunes on dev
and reports on test, and two whole sources (``HELD_OUT``) are never seen in dev at all.
Serving traces split by time: dev is the first half of each trace, test the second.

>>> pool = load_pools(None)
>>> sorted(pool)[:3]
['gsm8k', 'hh-rlhf', 'humaneval']
>>> all(c.turns for c in pool["koala"])
True
>>> "oasst" in load_pools(None, "dev"), "oasst" in load_pools(None, "test")
(False, True)
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from distillwatch.errors import ConfigError, DistillwatchError

SAMPLE_DIR = Path(__file__).parent / "sample"

# source -> kind (A: people talking to chatbots, B: what distillation pipelines send)
KINDS = {
    "sharegpt": "A",
    "koala": "A",
    "oasst": "A",
    "mt-bench": "A",
    "vicuna": "A",
    "hh-rlhf": "A",
    "wizardlm": "A",
    "alpaca-eval": "A",
    "self-instruct": "B",
    "alpaca": "B",
    "code-alpaca": "B",
    "gsm8k": "B",
    "humaneval": "B",
    "mbpp": "B",
}


Split = Literal["dev", "test", "all"]
SPLITS: tuple[Split, ...] = ("dev", "test", "all")
# whole sources kept out of dev: one of people's prompts (A), one of a distillation pipeline (B)
HELD_OUT = frozenset({"oasst", "self-instruct"})
TEST_SHARE = 0.4


class DataError(DistillwatchError):
    """A data source is missing or not in the shape the manifest describes."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """User turns in order; ``replies[i]`` answered ``turns[i]`` where the source has it."""

    source: str
    turns: tuple[str, ...]
    replies: tuple[str, ...] = ()


def find_data_dir(start: Path | None = None) -> Path | None:
    """``$DISTILLWATCH_DATA``, else the nearest ``shared/data`` with a MANIFEST.md, else None."""
    env = os.environ.get("DISTILLWATCH_DATA")
    if env:
        path = Path(env)
        if not (path / "MANIFEST.md").is_file():
            raise DataError(f"DISTILLWATCH_DATA={env}: no MANIFEST.md there")
        return path
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        for cand in (d / "shared" / "data", d / "data"):
            if (cand / "MANIFEST.md").is_file() and (cand / "gsm8k").is_dir():
                return cand
    return None


def _open(path: Path) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _jsonl(path: Path) -> Iterator[Any]:
    with _open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _json(path: Path) -> Any:
    with _open(path) as f:
        return json.load(f)


def _first(d: Path, *names: str) -> Path:
    for n in names:
        if (d / n).is_file():
            return d / n
    raise DataError(f"none of {', '.join(names)} in {d}")


def _one(source: str, text: str) -> Conversation:
    return Conversation(source, (text.strip(),))


def _transcript(text: str) -> Conversation:
    """An hh-rlhf ``\\n\\nHuman: ...\\n\\nAssistant: ...`` transcript."""
    turns: list[str] = []
    replies: list[str] = []
    for part in text.split("\n\nHuman: ")[1:]:
        human, _, assistant = part.partition("\n\nAssistant: ")
        turns.append(human.strip())
        replies.append(assistant.strip())
    return Conversation("hh-rlhf", tuple(turns), tuple(replies))


def _sharegpt(d: Path) -> Iterator[Conversation]:
    seen: set[str] = set()
    for name in (
        "sg_90k_part1_html_cleaned_lang_first_sampled.json",
        "ShareGPT_V3_filtered_1000.json",
    ):
        for rec in _json(_first(d, name, name + ".gz")):
            for msg in rec.get("conversations", []):
                text = msg.get("value", "")
                if msg.get("from") == "human" and text.strip() and text not in seen:
                    seen.add(text)
                    yield _one("sharegpt", text)


def _hh(d: Path) -> Iterator[Conversation]:
    for rec in _jsonl(_first(d, "test.jsonl.gz", "test.jsonl")):
        conv = _transcript(rec["chosen"])
        if conv.turns and all(conv.turns):
            yield conv


def _self_instruct(d: Path) -> Iterator[Conversation]:
    for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
        for rec in _jsonl(d / name):
            inst = (rec.get("instances") or [{}])[0]
            text = rec["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else "")
            yield _one("self-instruct", text)


def _alpaca_like(source: str, path: Path) -> Iterator[Conversation]:
    for rec in _json(path):
        text = rec["instruction"] + (f"\n\n{rec['input']}" if rec.get("input") else "")
        yield _one(source, text)


_RAW: dict[str, tuple[str, Callable[[Path], Iterator[Conversation]]]] = {
    "sharegpt": ("sharegpt-mlenergy", _sharegpt),
    "koala": (
        "koala-test-set",
        lambda d: (_one("koala", r["prompt"]) for r in _jsonl(d / "koala_test_set.jsonl")),
    ),
    "oasst": (
        "oasst-eval-prompts",
        lambda d: (
            _one("oasst", r)
            for n in ("en_100_text.jsonl", "prompt_lottery_en_250_text.jsonl")
            for r in _jsonl(d / n)
        ),
    ),
    "mt-bench": (
        "mt-bench",
        lambda d: (
            Conversation("mt-bench", tuple(r["turns"])) for r in _jsonl(d / "question.jsonl")
        ),
    ),
    "vicuna": (
        "vicuna-bench",
        lambda d: (_one("vicuna", r["turns"][0]) for r in _jsonl(d / "question.jsonl")),
    ),
    "hh-rlhf": ("hh-rlhf-harmless-test", _hh),
    "wizardlm": (
        "wizardlm-testset",
        lambda d: (
            _one("wizardlm", r["Instruction"]) for r in _jsonl(d / "WizardLM_testset.jsonl")
        ),
    ),
    "alpaca-eval": (
        "alpaca-eval",
        lambda d: (_one("alpaca-eval", r["instruction"]) for r in _json(d / "outputs.json")),
    ),
    "self-instruct": ("self-instruct", _self_instruct),
    "alpaca": ("alpaca-en-demo", lambda d: _alpaca_like("alpaca", d / "alpaca_en_demo.json")),
    "code-alpaca": (
        "code-alpaca",
        lambda d: _alpaca_like("code-alpaca", d / "code_alpaca_2k.json"),
    ),
    "gsm8k": (
        "gsm8k",
        lambda d: (
            _one("gsm8k", r["question"])
            for n in ("test.jsonl", "train.jsonl.gz")
            for r in _jsonl(_first(d, n, n.removesuffix(".gz")))
        ),
    ),
    "humaneval": (
        "humaneval",
        lambda d: (_one("humaneval", r["prompt"]) for r in _jsonl(_first(d, "HumanEval.jsonl.gz"))),
    ),
    "mbpp": ("mbpp-plus", lambda d: (_one("mbpp", v) for v in _json(d / "mbppplus.json").values())),
}


def _load_raw(data_dir: Path) -> dict[str, list[Conversation]]:
    pools: dict[str, list[Conversation]] = {}
    for source, (folder, parse) in _RAW.items():
        d = data_dir / folder
        if not d.is_dir():
            continue  # the manifest may drop a source; the generator uses what is there
        try:
            convs = [c for c in parse(d) if c.turns and c.turns[0]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{d}: cannot read {source}: {e}") from e
        if convs:
            pools[source] = convs
    return pools


def _load_sample() -> dict[str, list[Conversation]]:
    pools: dict[str, list[Conversation]] = {}
    for rec in _jsonl(SAMPLE_DIR / "prompts.jsonl.gz"):
        conv = Conversation(rec["source"], tuple(rec["turns"]), tuple(rec.get("replies", ())))
        pools.setdefault(conv.source, []).append(conv)
    return pools


def check_split(split: str) -> Split:
    """``split`` if it names one, else a ConfigError."""
    for s in SPLITS:
        if split == s:
            return s
    raise ConfigError(f"must be one of {', '.join(SPLITS)} (got {split!r})", key="split")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def split_of(text: str) -> Split:
    """``test`` for about ``TEST_SHARE`` of prompt texts, ``dev`` for the rest; stable.

    The bucket is a hash of the prompt text (case and spacing folded), so a prompt that
    several sources share (AlpacaEval holds the Koala, Vicuna and Self-Instruct prompts) lands
    on the same side in each of them and cannot be in both splits.

    >>> split_of("What is 2 + 2?") == split_of("  what is 2 +  2? ")
    True
    """
    digest = hashlib.sha256(_norm(text).encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") < TEST_SHARE * 2**64 else "dev"


def _split_pools(
    pools: dict[str, list[Conversation]], split: Split
) -> dict[str, list[Conversation]]:
    if split == "all":
        return pools
    held = {_norm(c.turns[0]) for s in HELD_OUT for c in pools.get(s, ())}
    out: dict[str, list[Conversation]] = {}
    for source, convs in pools.items():
        if source in HELD_OUT:
            keep = convs if split == "test" else []
        else:
            # a text a held-out source also has is test-only wherever it appears
            keep = [
                c
                for c in convs
                if ("test" if _norm(c.turns[0]) in held else split_of(c.turns[0])) == split
            ]
        if keep:
            out[source] = keep
    return out


@cache
def _load_all(data_dir: Path | None) -> dict[str, list[Conversation]]:
    pools = _load_raw(data_dir) if data_dir is not None else _load_sample()
    if not pools:
        raise DataError(f"no prompt source found under {data_dir or SAMPLE_DIR}")
    return pools


@cache
def load_pools(data_dir: Path | None, split: Split = "all") -> dict[str, list[Conversation]]:
    """Conversations by source name (see ``KINDS``), from ``data_dir`` or the sample.

    ``split``: ``dev``, ``test`` (about 40 % of every source, plus all of ``HELD_OUT``) or
    ``all``.
    """
    return _split_pools(_load_all(data_dir), check_split(split))


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One request of a serving trace: seconds from the trace start, token counts."""

    t: float
    prompt_tokens: int
    completion_tokens: int


def _azure(path: Path) -> list[TraceRow]:
    from datetime import datetime

    rows: list[TraceRow] = []
    t0: datetime | None = None
    with _open(path) as f:
        for rec in csv.DictReader(f):
            ts = datetime.fromisoformat(rec["TIMESTAMP"][:26])
            t0 = t0 or ts
            rows.append(
                TraceRow(
                    (ts - t0).total_seconds(),
                    int(rec["ContextTokens"]),
                    int(rec["GeneratedTokens"]),
                )
            )
    return rows


def _mooncake(path: Path) -> list[TraceRow]:
    return [
        TraceRow(r["timestamp"] / 1000.0, int(r["input_length"]), int(r["output_length"]))
        for r in _jsonl(path)
    ]


def _half(rows: list[TraceRow], split: Split) -> list[TraceRow]:
    """Dev: the first half of a trace by time; test: the second, re-based to start at 0."""
    if split == "all" or not rows:
        return rows
    mid = (rows[0].t + rows[-1].t) / 2
    if split == "dev":
        return [r for r in rows if r.t < mid]
    return [TraceRow(r.t - mid, r.prompt_tokens, r.completion_tokens) for r in rows if r.t >= mid]


@cache
def load_traces(data_dir: Path | None, split: Split = "all") -> dict[str, list[TraceRow]]:
    """Serving traces by name: ``azure-conv``, ``azure-code``, ``mooncake-conv``.

    ``split``: ``dev`` (first half of each trace by time), ``test`` (second half) or ``all``.
    """
    check_split(split)
    return {name: _half(rows, split) for name, rows in _load_traces(data_dir).items()}


@cache
def _load_traces(data_dir: Path | None) -> dict[str, list[TraceRow]]:
    if data_dir is None:
        base = SAMPLE_DIR
        files = {
            "azure-conv": (_azure, base / "azure_conv.csv.gz"),
            "azure-code": (_azure, base / "azure_code.csv.gz"),
            "mooncake-conv": (_mooncake, base / "mooncake_conversation.jsonl.gz"),
        }
    else:
        az, mc = data_dir / "azure-llm-inference-2023", data_dir / "mooncake-traces"
        files = {
            "azure-conv": (_azure, az / "AzureLLMInferenceTrace_conv.csv"),
            "azure-code": (_azure, az / "AzureLLMInferenceTrace_code.csv"),
            "mooncake-conv": (_mooncake, mc / "conversation_trace.jsonl.gz"),
        }
    out: dict[str, list[TraceRow]] = {}
    for name, (parse, path) in files.items():
        if path.is_file():
            try:
                out[name] = sorted(parse(path), key=lambda r: r.t)
            except (OSError, ValueError, KeyError) as e:
                raise DataError(f"{path}: cannot read trace: {e}") from e
    if "azure-conv" not in out:
        raise DataError(f"the Azure conversation trace is missing under {data_dir or SAMPLE_DIR}")
    return out
