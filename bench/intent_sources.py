"""Which prompt sources the extraction-intent classifier may be trained on, by data licence.

The shipped model (``intent-v1.npz``) is derived from its training texts, so by default it is
trained only on sources whose data licence allows that: Apache-2.0, MIT or CC BY 4.0 as
``shared/data/MANIFEST.md`` states it. CC BY-NC 4.0 sources and ShareGPT (no data licence
stated, "research use") are left out; ``--sources all`` puts them back for a private model.

>>> sorted(PERMISSIVE)
['gsm8k', 'hh-rlhf', 'humaneval', 'koala', 'mt-bench', 'oasst', 'self-instruct', 'vicuna']
>>> select("permissive") == PERMISSIVE and select("all") == frozenset(LICENCES)
True
>>> sorted(select("gsm8k, koala"))
['gsm8k', 'koala']
>>> select("alpaca,nope")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown source 'nope' (known: alpaca, alpaca-eval, code-alpaca, gsm8k, ...)
"""

from __future__ import annotations

from distillwatch.bench.sources import Conversation

# source (distillwatch.bench.sources.KINDS) -> its data licence as MANIFEST.md states it
LICENCES = {
    "mt-bench": "Apache-2.0",  # lm-sys/FastChat
    "vicuna": "Apache-2.0",  # lm-sys/FastChat
    "koala": "Apache-2.0",  # arnav-gudibande/koala-test-set
    "oasst": "Apache-2.0",  # LAION-AI/Open-Assistant (test-only: sources.HELD_OUT)
    "hh-rlhf": "MIT",  # anthropics/hh-rlhf
    "self-instruct": "Apache-2.0",  # yizhongw/self-instruct (test-only: sources.HELD_OUT)
    "gsm8k": "MIT",  # openai/grade-school-math
    "humaneval": "MIT",  # openai/human-eval
    "sharegpt": "none stated (research use)",  # scraped user chats; repo code Apache-2.0
    "alpaca-eval": "CC BY-NC 4.0",
    "wizardlm": "CC BY-NC 4.0",
    "alpaca": "CC BY-NC 4.0",
    "code-alpaca": "CC BY-NC 4.0",
    "mbpp": "CC BY-NC 4.0",  # MBPP+ as packaged by WizardCoder
}

PERMISSIVE_LICENCES = frozenset({"Apache-2.0", "MIT", "CC BY 4.0"})

PERMISSIVE = frozenset(s for s, licence in LICENCES.items() if licence in PERMISSIVE_LICENCES)

CHOICES = ("permissive", "all")


def select(spec: str) -> frozenset[str]:
    """``permissive``, ``all``, or a comma-separated list of source names; ValueError else."""
    spec = spec.strip()
    if spec == "permissive":
        return PERMISSIVE
    if spec == "all":
        return frozenset(LICENCES)
    names = {n.strip() for n in spec.split(",") if n.strip()}
    for n in sorted(names):
        if n not in LICENCES:
            raise ValueError(f"unknown source {n!r} (known: {', '.join(sorted(LICENCES))})")
    if not names:
        raise ValueError(f"no source named (use {' or '.join(CHOICES)} or a list of names)")
    return frozenset(names)


def restrict(
    pools: dict[str, list[Conversation]], names: frozenset[str]
) -> dict[str, list[Conversation]]:
    """Only the pools of ``names``, in the same order."""
    return {s: convs for s, convs in pools.items() if s in names}


def not_permissive(names: frozenset[str]) -> list[str]:
    """The names among ``names`` whose licence is not permissive, sorted."""
    return sorted(n for n in names if n not in PERMISSIVE)
