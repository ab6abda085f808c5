"""Labelled prompts for the extraction-intent classifier, built from dev or test texts.

* **Positives**: task texts (kind B, and some kind A) wrapped by *our own* generator
  (``Wrapper``) in one of five extraction-intent families — chain-of-thought elicitation,
  rubric grading (the model as a reward model), "safe" rewrites, capability sweeps /
  synthetic-data generation, agentic trace harvesting — composed from the phrase pools in
  ``intent_phrases``, with the instruction before, after, around the task or in the system
  message, format variants, re-wordings and multilingual touches.
* **Negatives**: kind-A prompts as sent; the same texts in benign wrappers (summaries,
  translations, "explain like I'm five", homework help in a person's words, code review,
  feedback on one's own work, tone rewrites, moderation questions, runtime agent prompts);
  bare kind-B problems; people's own how-to questions with a request for step-by-step
  instructions; generated procedures, plans and teachers' rubrics.
* **Held out**: the simulator's own templates (``distillwatch.bench.world``) are never used
  here except by ``sim_set``, the transfer test. One phrasing in five of every pool of ours
  (``Wrapper.pick``) is kept out of training too; validation and test use only those.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import intent_phrases as ph
from distillwatch.bench import world
from distillwatch.bench.sources import KINDS, Conversation
from distillwatch.signals import intent_model as im

FAMILIES = im.FAMILIES

VAL_SHARE = 0.2  # of dev texts, for choosing C and the threshold (never trained on)


# the simulator's template pools: extraction families, and pools both labels use
SIM_POSITIVE = {
    "REASONING_TEMPLATES": "reasoning",
    "RUBRIC_TEMPLATES": "grading",
    "REWRITE_TEMPLATES": "rewrite",
}


SIM_NEUTRAL = ("TASK_TEMPLATES", "CODE_TEMPLATES", "AGENT_TEMPLATES")


@dataclass(frozen=True)
class Sample:
    user: str
    system: str | None
    label: int  # 1: extraction intent
    family: str  # an intent family for positives, a negative kind otherwise
    source: str


class Wrapper:
    """Builds prompts from the phrase pools below; ``heldout`` picks the held-out phrasings.

    In every pool of five or more phrasings, every fifth (index 4, 9, ...) is held out:
    training never sees it, test (a) sees only those.
    """

    def __init__(self, rng: random.Random, heldout: bool, responses: Sequence[str]) -> None:
        self.rng = rng
        self.heldout = heldout
        self.responses = responses

    def pick(self, pool: Sequence[str]) -> str:
        if len(pool) >= 5:
            part = [p for i, p in enumerate(pool) if (i % 5 == 4) == self.heldout]
            return part[self.rng.randrange(len(part))]
        return pool[self.rng.randrange(len(pool))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def fill(self, text: str) -> str:
        """Expand ``{slot}`` placeholders from the pools (recursively), then tidy spaces."""

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in _NUMBERS:
                lo, hi = _NUMBERS[name]
                return str(self.rng.randint(lo, hi))
            if name not in ph.SLOTS:  # {q}, {r}, {i}: filled by the caller
                return m.group(0)
            return self.fill(self.pick(ph.SLOTS[name]))

        return _SLOT.sub(one, text)

    # -- the pieces every prompt shares ------------------------------------------------------

    def frame(self, task: str) -> str:
        """The task as the user sends it: bare, or in a neutral frame (both labels use these)."""
        return self.pick(ph.FRAMES).replace("{q}", task) if self.chance(0.35) else task

    def dress(self, text: str) -> str:
        """A person's or a script's lead-in and sign-off (both labels)."""
        if self.chance(0.25):
            text = self.fill(self.pick(ph.GREETINGS)) + text
        if self.chance(0.2):
            text += self.fill(self.pick(ph.SIGNOFFS))
        return text

    def benign_system(self) -> str | None:
        """An app's system prompt (both labels): a persona and, often, a few house rules."""
        if not self.chance(0.35):
            return None
        parts = [self.fill(self.pick(ph.BENIGN_SYSTEMS))]
        for _ in range(self.rng.choice((0, 1, 1, 2, 3))):
            parts.append(self.pick(ph.BENIGN_RULES))
        return " ".join(parts)

    def benign_tail(self) -> str:
        """Style, format and length requests people and apps add (both labels)."""
        if not self.chance(0.45):
            return ""
        tails = [self.fill(self.pick(ph.BENIGN_TAILS)) for _ in range(self.rng.choice((1, 1, 2)))]
        return " ".join(tails)

    def place(self, instruction: str, task: str, tail: str = "") -> tuple[str | None, str]:
        """Instruction before, after, around the task, or in the system message."""
        sep = self.pick(ph.SEPARATORS)
        r = self.rng.random()
        if r < 0.15:  # the instruction is the system message
            user = self.frame(task) + (sep + tail if tail else "")
            return instruction, self.dress(user)
        system = self.benign_system()
        if r < 0.50:
            user = f"{instruction}{sep}{self.frame(task)}" + (sep + tail if tail else "")
        elif r < 0.80:
            user = f"{self.frame(task)}{sep}{instruction}" + (" " + tail if tail else "")
        elif r < 0.90:
            user = self.fill(self.pick(ph.LAYOUTS)).replace("{i}", instruction).replace("{q}", task)
            user += sep + tail if tail else ""
        else:  # around: the main demand first, a second one after the task
            user = f"{instruction}{sep}{task}{sep}{tail or self.fill(self.pick(ph.REMINDERS))}"
        return system, self.dress(user)

    def noise(self, text: str) -> str:
        """Re-wording and formatting variants of an instruction (both labels get them).

        Half the time some words become synonyms (``ph.SYNONYMS``) and a few words are dropped,
        so the model learns the intent rather than our exact phrasings; then casual lower
        case, no final stop, or shouting. ``{q}``-style placeholders are left alone.
        """
        parts = _PLACEHOLDER.split(text)
        for i in range(0, len(parts), 2):  # even parts are text, odd ones placeholders
            parts[i] = self._reword(parts[i])
        text = "".join(parts)
        r = self.rng.random()
        if r < 0.08:
            return text.lower()
        if r < 0.14:
            return text.rstrip(".!")
        if r < 0.17:
            return "".join(
                p if i % 2 else p.upper() for i, p in enumerate(_PLACEHOLDER.split(text))
            )
        return text

    def _reword(self, text: str) -> str:
        if not text or not self.chance(0.5):
            return text
        words = text.split(" ")
        out = []
        for w in words:
            core = w.strip(".,:;!?()\"'").lower()
            if core in ph.SYNONYMS and self.chance(0.5):
                alt = ph.SYNONYMS[core][self.rng.randrange(len(ph.SYNONYMS[core]))]
                if w[:1].isupper():
                    alt = alt[:1].upper() + alt[1:]
                w = w.replace(w.strip(".,:;!?()\"'"), alt, 1)
            elif len(words) > 6 and self.chance(0.06) and "\n" not in w:
                continue
            out.append(w)
        return " ".join(out)

    # -- positives ---------------------------------------------------------------------------

    def positive(self, family: str, task: str, source: str) -> Sample:
        system, user = getattr(self, f"_{family}")(task)
        if self.chance(0.5):
            tail = self.benign_tail()
            user = f"{user} {tail}" if tail else user
        return Sample(user, system, 1, family, source)

    def _tail(self, pool: Sequence[str], p: float) -> str:
        return self.fill(self.pick(pool)) if self.chance(p) else ""

    def _reasoning(self, task: str) -> tuple[str | None, str]:
        if self.chance(0.1):
            instruction = self.pick(ph.REASONING_MULTILINGUAL)
        else:
            instruction = self.noise(self.fill(self.pick(ph.REASONING)))
        tail = " ".join(
            t for t in (self._tail(ph.REASONING_FORMAT, 0.35), self._tail(ph.PURPOSE, 0.08)) if t
        )
        if self.chance(0.12):
            return self.fill(self.pick(ph.REASONING_SYSTEM)), self.dress(self.frame(task))
        return self.place(instruction, task, tail)

    def _grading(self, task: str) -> tuple[str | None, str]:
        response = self.responses[self.rng.randrange(len(self.responses))]
        other = self.responses[self.rng.randrange(len(self.responses))]
        layout = self.pick(ph.GRADING_LAYOUTS)
        body = layout.replace("{q}", task).replace("{r}", response).replace("{r2}", other)
        if self.chance(0.1):
            instruction = self.pick(ph.GRADING_MULTILINGUAL)
        else:
            instruction = self.noise(self.fill(self.pick(ph.GRADING)))
        if self.chance(0.3):
            instruction += "\n\n" + self.fill(self.pick(ph.RUBRICS))
        tail = " ".join(
            t for t in (self._tail(ph.GRADING_FORMAT, 0.6), self._tail(ph.PURPOSE, 0.08)) if t
        )
        if self.chance(0.2):
            return self.fill(self.pick(ph.GRADING_SYSTEM)), self.dress(
                body + ("\n\n" + tail if tail else "")
            )
        return self.place(instruction, body, tail)

    def _rewrite(self, task: str) -> tuple[str | None, str]:
        if self.chance(0.1):
            instruction = self.pick(ph.REWRITE_MULTILINGUAL)
        else:
            instruction = self.noise(self.fill(self.pick(ph.REWRITE)))
        tail = " ".join(
            t for t in (self._tail(ph.REWRITE_TAIL, 0.5), self._tail(ph.PURPOSE, 0.08)) if t
        )
        if self.chance(0.12):
            return self.fill(self.pick(ph.REWRITE_SYSTEM)), self.dress(task)
        return self.place(instruction, task, tail)

    def _sweep(self, task: str) -> tuple[str | None, str]:
        if self.chance(0.35):  # synthetic-data generation seeded with the task
            instruction = self.noise(self.fill(self.pick(ph.DATAGEN)))
            return self.place(instruction, task, self._tail(ph.PURPOSE, 0.3))
        header = self.fill(self.pick(ph.SWEEP_HEADERS))
        demand = (
            self.pick(ph.SWEEP_MULTILINGUAL)
            if self.chance(0.08)
            else self.fill(self.pick(ph.SWEEP))
        )
        body = f"{header}\n{task}" if self.chance(0.7) else f"{task}\n\n{header}"
        tail = self._tail(ph.PURPOSE, 0.25)
        if self.chance(0.15):
            return self.fill(self.pick(ph.SWEEP_SYSTEM)), self.dress(f"{body}\n\n{demand}")
        return self.place(self.noise(demand), body, tail)

    def _agentic(self, task: str) -> tuple[str | None, str]:
        tools = self.fill(self.pick(ph.TOOL_LISTS))
        if self.chance(0.1):
            demand = self.pick(ph.AGENTIC_MULTILINGUAL)
        else:
            demand = self.noise(self.fill(self.pick(ph.AGENTIC)))
        fmt = self._tail(ph.AGENTIC_FORMAT, 0.5)
        instruction = f"{demand}\n\n{tools}" if self.chance(0.6) else demand
        if self.chance(0.35):
            system = f"{self.fill(self.pick(ph.AGENT_ROLES))} {demand}\n\n{tools}" + (
                f"\n\n{fmt}" if fmt else ""
            )
            return system, self.dress(self.frame(task))
        return self.place(instruction, task, fmt)

    # -- negatives ---------------------------------------------------------------------------

    def benign(self, kind: str, text: str, source: str) -> Sample:
        """A benign prompt of ``kind`` around ``text`` (kind-A or kind-B)."""
        system = self.benign_system()
        if kind == "plain":
            user = text
        elif kind == "bare_task":
            user = self.dress(self.frame(text))
            if self.chance(0.3):
                user += " " + self.fill(self.pick(ph.ANSWER_ONLY))
        elif kind == "agent_runtime":
            system = (
                f"{self.fill(self.pick(ph.AGENT_ROLES))} {self.fill(self.pick(ph.AGENT_RUNTIME))}"
            )
            if self.chance(0.5):
                system += "\n\n" + self.fill(self.pick(ph.TOOL_LISTS))
            user = self.dress(text if self.chance(0.5) else self.fill(self.pick(ph.AGENT_TASKS)))
        elif kind == "multilingual":
            user = self.pick(ph.BENIGN_MULTILINGUAL).replace("{q}", text)
        else:
            pool = ph.BENIGN[kind]
            user = self.dress(self.noise(self.fill(self.pick(pool))).replace("{q}", text))
            if kind == "own_work" and "{r}" in user:
                user = user.replace("{r}", self.responses[self.rng.randrange(len(self.responses))])
        tail = self.benign_tail() if kind != "plain" else ""
        if tail:
            user = (
                f"{user}{self.pick(ph.SEPARATORS)}{tail}"
                if self.chance(0.7)
                else f"{tail}\n\n{user}"
            )
        return Sample(user, system, 0, kind, source)


_SLOT = re.compile(r"\{([a-z_0-9]+)\}")


_PLACEHOLDER = re.compile(r"(\{[a-z_0-9]+\})")


_NUMBERS = {"n": (1, 9999), "k": (3, 50), "m": (100, 5000), "id": (10000, 999999)}


def _bucket(text: str) -> float:
    """A uniform number in [0, 1) per text, independent of ``sources.split_of``'s hash."""
    digest = hashlib.sha256(b"intent-val/" + " ".join(text.lower().split()).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_validation(text: str) -> bool:
    """Whether a dev text is kept for validation (choosing C and the threshold)."""
    return _bucket(text) < VAL_SHARE


def texts_of(pools: dict[str, list[Conversation]], kind: str) -> list[tuple[str, str]]:
    """(source, text) of every user turn of ``kind`` sources, sorted (deterministic)."""
    out = {
        (s, t.strip())
        for s, cs in pools.items()
        if KINDS.get(s) == kind
        for c in cs
        for t in c.turns
    }
    return sorted((s, t) for s, t in out if t)


def _replies(pools: dict[str, list[Conversation]]) -> list[str]:
    out = {r.strip() for cs in pools.values() for c in cs for r in c.replies if len(r.strip()) > 20}
    return sorted(out)


def _cap(
    rng: random.Random, items: list[tuple[str, str]], per_source: int
) -> list[tuple[str, str]]:
    by: dict[str, list[tuple[str, str]]] = {}
    for s, t in items:
        by.setdefault(s, []).append((s, t))
    out: list[tuple[str, str]] = []
    for s in sorted(by):
        group = by[s]
        rng.shuffle(group)
        out += group[:per_source]
    rng.shuffle(out)
    return out


NEGATIVE_MIX = (  # benign kind, share of its group, group: around a task's text or none
    ("explain", 0.09, "task"),
    ("summarise", 0.07, "task"),
    ("translate", 0.05, "task"),
    ("homework", 0.11, "task"),
    ("code_help", 0.10, "task"),
    ("own_work", 0.07, "task"),
    ("tone_rewrite", 0.07, "task"),
    ("reply", 0.05, "task"),
    ("roleplay", 0.05, "task"),
    ("moderation", 0.04, "task"),
    ("agent_runtime", 0.10, "task"),
    ("multilingual", 0.06, "task"),
    ("procedure", 0.60, "none"),
    ("planning", 0.25, "none"),
    ("teacher", 0.15, "none"),
)


# a person's own how-to question: these get a "howto" wrapper (step-by-step guide requests)
HOWTO = re.compile(
    r"\W*(how (do|can|should|would|could|to)\b|what('s| is| are) the (best|easiest|right|steps)"
    r"|steps (to|for)\b|(guide|tutorial|instructions) (to|for|on)\b|explain how\b)",
    re.IGNORECASE,
)


HOWTO_MAX_CHARS = 600


def build_set(
    pools: dict[str, list[Conversation]],
    *,
    rng: random.Random,
    heldout: bool,
    n_pos: int,
    n_generated: int,
    howto_repeats: int = 1,
    keep: Callable[[str], bool] | None = None,
    paste_share: float = 0.0,
) -> list[Sample]:
    """Positives of every family, each paired with a negative around the same text.

    Every text wrapped in an extraction instruction is also used once bare or in a benign
    wrapper, so the two classes hold the same texts and only the instructions tell them
    apart. Every kind-A prompt (that ``keep`` lets through: the dev train/validation split)
    is also a plain negative as sent; ``n_generated`` negatives need no text (procedures,
    plans, rubrics for a class). Every kind-A how-to question ("how do I ...") is also sent
    ``howto_repeats`` times with a request for step-by-step instructions: people ask for
    steps all the time, and that is not a request for the model's reasoning.

    ``paste_share`` of the kind-A prompts are sent again with pasted material (``paste``:
    300-3,000 characters of the set's other texts, before or after them), as a negative
    ``pasted`` and half the time in an extraction wrapper too, and the same share of the
    texts wrapped as positives are lengthened so, for both classes alike: a set built from
    sources without long prompts (the permissively licensed ones are mostly short) then
    still teaches that a long prompt is not suspicious in itself. 0 (the default) draws
    nothing more from ``rng``, so the sets it builds are the same as before it existed.
    """
    a = [x for x in texts_of(pools, "A") if keep is None or keep(x[1])]
    b = [x for x in texts_of(pools, "B") if keep is None or keep(x[1])]
    responses = [r for r in _replies(pools) if keep is None or keep(r)] + ph.RESPONSES
    gen = Wrapper(rng, heldout, responses)
    tasks_b = _cap(rng, b, 1200)
    samples = []
    for s, t in a:  # people's prompts as sent; half of the texts in a wrapper too
        samples.append(gen.benign("plain", t, s))
        if gen.chance(0.5):
            samples.append(gen.positive(FAMILIES[rng.randrange(len(FAMILIES))], t, s))
    for s, t in a:
        if len(t) <= HOWTO_MAX_CHARS and HOWTO.match(t):
            samples += [gen.benign("howto", t, s) for _ in range(howto_repeats)]
    material = [t for _, t in (*a, *b)] + responses
    if paste_share:
        for s, t in a:
            if gen.chance(paste_share):
                long = paste(rng, t, material)
                samples.append(dataclasses.replace(gen.benign("plain", long, s), family="pasted"))
                if gen.chance(0.5):
                    samples.append(gen.positive(FAMILIES[rng.randrange(len(FAMILIES))], long, s))
    wrapped = [(k, share) for k, share, group in NEGATIVE_MIX if group == "task"]
    generated = [(k, share) for k, share, group in NEGATIVE_MIX if group == "none"]
    for fam in FAMILIES:
        for _ in range(n_pos // len(FAMILIES)):
            pool = a if gen.chance(0.6 if fam == "rewrite" else 0.3) else tasks_b
            s, t = pool[rng.randrange(len(pool))]
            if paste_share and gen.chance(paste_share):
                t = paste(rng, t, material)
            samples.append(gen.positive(fam, t, s))
            kind = "bare_task" if gen.chance(0.35) else _weighted(rng, wrapped)
            samples.append(gen.benign(kind, t, s))
    for _ in range(n_generated):
        samples.append(gen.benign(_weighted(rng, generated), "", "generated"))
    return samples


def paste(rng: random.Random, text: str, material: Sequence[str]) -> str:
    """``text`` with 300-3,000 characters (log-uniform) of ``material`` before or after it.

    A stand-in for the document, code or chat log people paste into a prompt.

    >>> long = paste(random.Random(1), "Can you fix this?", ["x = 1", "print(x)"])
    >>> "Can you fix this?" in long and 300 <= len(long) - len("Can you fix this?") <= 3002
    True
    """
    target = int(300 * 10 ** rng.random())
    parts: list[str] = []
    size = 0
    while size < target:
        part = material[rng.randrange(len(material))]
        parts.append(part)
        size += len(part) + 2
    doc = "\n\n".join(parts)[:target]
    return f"{text}\n\n{doc}" if rng.random() < 0.6 else f"{doc}\n\n{text}"


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    total = sum(w for _, w in options)
    x = rng.random() * total
    for name, w in options:
        x -= w
        if x < 0:
            return name
    return options[-1][0]


def sim_set(
    pools: dict[str, list[Conversation]], rng: random.Random, per_pool: int
) -> list[Sample]:
    """The simulator's templates (never trained on) on test tasks, re-worded as it does."""
    tasks_b = _cap(rng, texts_of(pools, "B"), 800)
    chat = texts_of(pools, "A")
    out: list[Sample] = []
    for name in sorted(n for n in dir(world) if n.endswith("_TEMPLATES")):
        templates = getattr(world, name)
        if not isinstance(templates, tuple) or not all(isinstance(t, str) for t in templates):
            continue
        family = SIM_POSITIVE.get(name)
        for i in range(per_pool):
            tpl = templates[i % len(templates)]
            pool = chat if (family is None and name == "TASK_TEMPLATES" and i % 2) else tasks_b
            s, t = pool[rng.randrange(len(pool))]
            text = tpl.format(q=t)
            if rng.random() < 0.6:
                text = world.vary(text, rng.randrange(world.variants(1.0)), 1.0)
            system = world.pick(rng, world.SYSTEM_PROMPTS) if rng.random() < 0.3 else None
            label = 1 if family else 0
            out.append(Sample(text, system, label, family or f"sim:{name}", s))
    return out


def leak_check() -> list[str]:
    """Word 6-grams the simulator's templates share with our phrase pools (should be few)."""

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9']+", text.lower())
        return {tuple(words[i : i + 6]) for i in range(len(words) - 5)}

    ours: set[tuple[str, ...]] = set()
    for pool in (*ph.SLOTS.values(), *ph.BENIGN.values()):
        for phrase in pool:
            ours |= grams(phrase)
    shared: set[str] = set()
    for name in (*SIM_POSITIVE, *SIM_NEUTRAL, "LEAD_INS", "CLOSINGS", "SYSTEM_PROMPTS"):
        for tpl in getattr(world, name, ()):
            shared |= {" ".join(g) for g in grams(tpl) & ours}
    return sorted(shared)
