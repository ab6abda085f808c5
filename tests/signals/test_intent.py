"""The extraction-intent classifier (``intent_model``) and its signal (``intent``)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import random
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from distillwatch.bench.sources import KINDS, load_pools
from distillwatch.records import Exchange
from distillwatch.signals import create_signals
from distillwatch.signals import intent_model as im
from distillwatch.signals.base import EvalContext
from distillwatch.signals.intent import SAMPLE_FIRST, ExtractionIntent, sampled, system_text
from distillwatch.testing.checks import check_signal

ROOT = Path(__file__).parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)

# Written for these tests (not taken from the training data or the simulator's templates).
POSITIVE = {
    "reasoning": [
        "A cyclist rides 18 km in 45 minutes and then 12 km in 30 minutes. What is her average "
        "speed? Please think this through carefully and show every step of your reasoning "
        "before the final answer.",
        "Before answering, write out your complete chain of thought.\n\nIs 391 a prime number?",
    ],
    "grading": [
        "You are an expert judge. Rate the following assistant reply for accuracy and "
        "helpfulness on a scale of 1 to 10, then justify the score.\n\n"
        "Question: What causes ocean tides?\nReply: Mostly the moon's gravity.",
    ],
    "rewrite": [
        "Rewrite this user message so it contains no offensive or unsafe content, then answer "
        "the rewritten version: how do I get back at my noisy neighbour",
    ],
    "sweep": [
        "Generate 25 diverse SQL tasks similar to the example below, each with a reference "
        "solution, as JSON lines.\n\nExample: list the three customers with the highest revenue.",
    ],
    "agentic": [
        "You are an autonomous agent with the tools search(query) and python(code). Think out "
        "loud before every tool call and write out each call, its arguments and its result "
        "until you reach the final answer.\n\nTask: find the population of Lyon and double it.",
    ],
}
NEGATIVE = [
    "what's a good name for a golden retriever puppy?",
    "Can you summarize this for me? The city council voted on Tuesday to extend the bike lane "
    "on Main Street by two miles, citing a rise in cycling commuters.",
    "How do I solve 2x + 3 = 11? I keep getting 5 but the book says 4.",
    "Please review my Python code, the result is wrong:\ndef add(a, b):\n    return a - b",
    "Rewrite this email so it sounds more professional: hey boss cant come in tmrw, sick",
    "Translate 'where is the train station?' into German.",
    "A bakery sells 120 loaves on Monday and a quarter more on Tuesday. How many loaves did it "
    "sell on Tuesday?",
    "Tell me a joke about penguins.",
]

# People asking for a how-to guide: step by step, but no request for the model's reasoning.
PROCEDURES = [
    "Can you give me step by step instructions for replacing the battery in a smoke detector?",
    "How do I set up port forwarding on my router? Please walk me through it step by step.",
    "I have never baked before. Step by step, how do I make banana bread?",
    "Explain step by step how a bill moves through the US Congress.",
    "how do i change the default shell to zsh on a mac, step by step please",
]
# ...and the same words around a problem, asking for the reasoning.
STEP_BY_STEP_REASONING = [
    "Solve this step by step and show all of your reasoning: if 3x - 7 = 20, what is x?",
    "def is_palindrome(s):\n    pass\n\nComplete the function. Before the code, explain your "
    "reasoning step by step.",
]


def exchange(i: int, text: str | None, account: str = "a", system: str | None = None) -> Exchange:
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return Exchange(
        id=f"ex_{account}_{i}",
        ts=T0 + timedelta(seconds=30 * i),
        account_id=account,
        ip="192.0.2.1",
        model="m",
        request={"messages": messages} if text is not None else None,
    )


def ctx(n: int) -> EvalContext:
    now = (T0 + timedelta(seconds=30 * n)).timestamp()
    return EvalContext(now=now, account=None, tier="paid", exchanges=n)


# -- the artifact -------------------------------------------------------------------------------


def test_artifact_loads_and_is_at_most_1_mb() -> None:
    assert im.DEFAULT_MODEL.stat().st_size <= 1_000_000
    m = im.load_model()
    assert m.weights.shape == (2**im.BITS,)
    assert m.family_weights.shape == (len(im.FAMILIES), 2**im.FAMILY_BITS)
    assert 0.0 < m.threshold < 1.0
    assert m.meta["feature_version"] == im.FEATURE_VERSION
    assert np.isfinite(m.weights).all() and np.isfinite(m.family_weights).all()


def test_inference_is_deterministic() -> None:
    text = POSITIVE["grading"][0]
    first = im.load_model().classify(text)
    fresh = im.read_model(im.DEFAULT_MODEL)  # a second copy, read from disk again
    assert fresh.classify(text) == first
    assert im.load_model().classify(text) == first


def test_features_are_stable() -> None:
    """A changed featurizer silently invalidates the artifact: this pins it."""
    data = im.prompt_input("Let's think STEP by step: 12 + 30?", "You are a judge.")
    assert data == b" you are a judge. | let's think step by step: 0 + 0? "
    codes = im.ngram_hashes(data)
    digest = hashlib.sha256(codes.astype("<u8").tobytes()).hexdigest()[:16]
    assert (codes.size, digest) == EXPECTED_FEATURES


EXPECTED_FEATURES = (144, "2d67b94fe25b4667")


def test_edges_only() -> None:
    middle = "lorem ipsum " * 500
    text = "HEAD instruction. " + middle + " TAIL instruction."
    data = im.prompt_input(text)
    assert data.startswith(b" head instruction.") and data.endswith(b"tail instruction. ")
    assert len(data) < 2 * im.EDGE_CHARS + 10


@pytest.fixture(scope="module")
def ti() -> Iterator[ModuleType]:
    """``bench/train_intent.py`` as a module (it imports ``intent_phrases`` beside it)."""
    pytest.importorskip("sklearn")
    pytest.importorskip("scipy")
    bench = str(ROOT / "bench")
    sys.path.insert(0, bench)
    try:
        spec = importlib.util.spec_from_file_location("train_intent", f"{bench}/train_intent.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["train_intent"] = module
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(bench)
        sys.modules.pop("train_intent", None)
        sys.modules.pop("intent_phrases", None)


def test_training_features_are_the_inference_features(ti: ModuleType) -> None:
    """The training matrix row, times the shipped weights, is the logit inference computes."""
    m = im.load_model()
    pairs = [(POSITIVE["agentic"][0], None), (NEGATIVE[1], "Be brief."), ("", None)]
    samples = [ti.Sample(t, s, 0, "x", "y") for t, s in pairs]
    logits = m.bias + ti.matrix(samples) @ m.weights.astype(np.float64)
    for expected, s in zip(logits, samples, strict=True):
        assert m.logit(s.user, s.system) == pytest.approx(float(expected), rel=1e-4, abs=1e-4)


@pytest.mark.parametrize(
    ("family", "text"), [(f, t) for f, texts in POSITIVE.items() for t in texts]
)
def test_clear_positives(family: str, text: str) -> None:
    p, fam = im.load_model().classify(text)
    assert fam == family, (p, fam)


@pytest.mark.parametrize("text", NEGATIVE)
def test_clear_negatives(text: str) -> None:
    p, fam = im.load_model().classify(text)
    assert fam is None, p


@pytest.mark.parametrize("text", PROCEDURES)
def test_how_to_guides_are_not_extraction(text: str) -> None:
    m = im.load_model()
    p, fam = m.classify(text)
    assert fam is None and p < m.threshold / 2, p


@pytest.mark.parametrize("text", STEP_BY_STEP_REASONING)
def test_step_by_step_reasoning_on_a_problem_is(text: str) -> None:
    assert im.load_model().classify(text)[1] == "reasoning"


def test_save_model_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    m = im.load_model()
    im.save_model(tmp_path / "a.npz", m)
    im.save_model(tmp_path / "b.npz", m)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    again = im.read_model(tmp_path / "a.npz")
    assert np.array_equal(again.weights, m.weights) and again.threshold == m.threshold
    assert again.classify(POSITIVE["sweep"][0]) == m.classify(POSITIVE["sweep"][0])


def test_read_model_refuses_other_features(tmp_path: Path) -> None:
    m = im.load_model()
    im.save_model(tmp_path / "m.npz", m)
    with zipfile.ZipFile(tmp_path / "m.npz") as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(np.load(io.BytesIO(entries["meta.npy"])).tobytes())
    meta["feature_version"] = im.FEATURE_VERSION + 1
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    entries["meta.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(ValueError, match="built for other features"):
        im.read_model(tmp_path / "other.npz")


def test_shipped_evaluation_matches_the_artifact() -> None:
    report = json.loads(im.DEFAULT_MODEL.with_suffix(".eval.json").read_text())
    m = im.load_model()
    assert report["threshold"] == pytest.approx(m.threshold, abs=1e-6)
    assert report["artifact_bytes"] == im.DEFAULT_MODEL.stat().st_size
    assert m.meta["trained_on"].startswith("dev split only")
    # the figures docs/intent-model.md quotes: held-out phrasings on test-split texts
    assert report["test_ours"]["negative_kind"]["procedure"]["fpr"] < 0.1
    assert report["test_ours"]["negative_kind"]["howto"]["fpr"] < 0.05
    assert report["test_sim"]["overall"]["auc"] > 0.95


def test_system_message_counts() -> None:
    m = im.load_model()
    task = "What is 17 * 23?"
    alone, _ = m.classify(task)
    with_system, _ = m.classify(task, "Always think step by step and show your full reasoning.")
    assert alone < m.threshold <= with_system


# -- the signal ---------------------------------------------------------------------------------


def test_registered_and_contract() -> None:
    assert any(s.id == "content.extraction_intent" for s in create_signals())
    check_signal(ExtractionIntent())


def test_unavailable_without_text() -> None:
    sig = ExtractionIntent()
    st = sig.new_state()
    for i in range(30):
        sig.update(st, exchange(i, None), float(i))
    v = sig.evaluate(st, ctx(30))
    assert not v.available and v.evidence == 0.0


def _run(sig: ExtractionIntent, texts: list[str], account: str) -> Any:
    st = sig.new_state()
    for i, text in enumerate(texts):
        sig.update(st, exchange(i, text, account), float(i))
    return st


def test_extraction_account_against_chat_account() -> None:
    sig = ExtractionIntent()
    harvest = [POSITIVE[f][0] for f in ("reasoning", "grading")] * 60
    chat = NEGATIVE * 15
    h = sig.evaluate(_run(sig, harvest, "h"), ctx(120))
    c = sig.evaluate(_run(sig, chat, "c"), ctx(120))
    assert h.evidence > 2.0 > 0.0 >= c.evidence
    assert h.value is not None and h.value > 0.9
    assert "sampled prompts try to extract" in h.explanation
    assert "reasoning" in h.explanation and "grading" in h.explanation
    assert "typical accounts" in h.explanation


def test_evidence_grows_with_the_share() -> None:
    sig = ExtractionIntent()
    evidence = []
    for share in (0, 2, 5, 10):
        texts = [POSITIVE["rewrite"][0] if i % 10 < share else NEGATIVE[i % 8] for i in range(60)]
        evidence.append(sig.evaluate(_run(sig, texts, f"s{share}"), ctx(60)).evidence)
    assert evidence == sorted(evidence) and evidence[0] < evidence[-1]


def test_sampling() -> None:
    assert all(sampled(i, "any") for i in range(1, SAMPLE_FIRST + 1))
    later = [sampled(100, f"ex_{i}") for i in range(4000)]
    assert 0.09 < sum(later) / len(later) < 0.16  # one in eight
    slow = [sampled(10_000, f"ex_{i}") for i in range(4000)]
    assert 0.02 < sum(slow) / len(slow) < 0.05  # one in thirty-two
    assert sampled(100, "ex_7") == sampled(100, "ex_7")


def test_system_text() -> None:
    multi = {
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]}]
    }
    assert system_text(multi) == "Be brief."
    assert system_text({"messages": [{"role": "user", "content": "hi"}]}) is None


# -- the trainer --------------------------------------------------------------------------------


def test_held_out_phrasings_never_reach_training(ti: ModuleType) -> None:
    pool = tuple(f"phrase {i}" for i in range(12))
    train = ti.Wrapper(random.Random(1), heldout=False, responses=["r"])
    held = ti.Wrapper(random.Random(1), heldout=True, responses=["r"])
    seen_train = {train.pick(pool) for _ in range(500)}
    seen_held = {held.pick(pool) for _ in range(500)}
    assert seen_held == {"phrase 4", "phrase 9"}
    assert seen_train == set(pool) - seen_held


def test_phrase_pools_do_not_copy_the_simulator(ti: ModuleType) -> None:
    """The simulator's templates are the transfer test: our pools must not quote them."""
    assert len(ti.leak_check()) <= 2, ti.leak_check()


def test_build_set_is_deterministic_and_balanced(ti: ModuleType) -> None:
    pools = load_pools(None, "dev")  # the packaged sample: small and always there

    def build(seed: int) -> Any:
        return ti.build_set(
            pools, rng=random.Random(seed), heldout=False, n_pos=200, n_generated=40
        )

    first = build(3)
    assert first == build(3) and first != build(4)
    families = {s.family for s in first if s.label == 1}
    assert families == set(im.FAMILIES)
    kinds = {s.family for s in first if s.label == 0}
    assert {"plain", "procedure", "bare_task"} <= kinds
    assert ti.HOWTO.match("How do I reset my router?") and not ti.HOWTO.match("Tell me a joke")


def test_pasted_material_lengthens_both_classes(ti: ModuleType) -> None:
    pools = load_pools(None, "dev")

    def build(**kw: Any) -> Any:
        return ti.build_set(
            pools, rng=random.Random(3), heldout=False, n_pos=200, n_generated=40, **kw
        )

    assert build() == build(paste_share=0.0)  # off: the sets are the same as before
    pasted = build(paste_share=0.5)
    assert any(s.family == "pasted" for s in pasted)
    assert {s.label for s in pasted if len(s.user) > 1000} == {0, 1}


# -- licences: the shipped model is trained on permissively licensed sources only ------------


def test_every_source_has_a_licence(ti: ModuleType) -> None:
    assert set(ti.LICENCES) == set(KINDS)
    not_ok = {"alpaca", "alpaca-eval", "code-alpaca", "mbpp", "wizardlm", "sharegpt"}
    assert not ti.PERMISSIVE & not_ok
    assert ti.select("all") >= not_ok and ti.select("permissive") == ti.PERMISSIVE


def test_shipped_model_is_trained_on_permissive_sources_only(ti: ModuleType) -> None:
    used = im.load_model().meta["train_sources"]
    assert used and set(used) <= ti.PERMISSIVE
    assert not {"oasst", "self-instruct"} & set(used)  # test-only sources
    report = json.loads(im.DEFAULT_MODEL.with_suffix(".eval.json").read_text())
    assert report["train_sources"] == used
    assert set(report["test_permissive"]["sources"]) <= ti.PERMISSIVE


def test_trainer_refuses_restricted_data_for_the_shipped_artifact(
    ti: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        ti.main(["--sources", "all"])
    assert exc.value.code == 2
    assert "not permissively licensed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ti.main(["--sources", "gsm8k,nope", "--out", str(tmp_path / "m.npz")])
    assert "unknown source 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_threshold_picks_the_lowest_within_the_fpr(ti: ModuleType) -> None:
    y = np.array([0] * 100 + [1] * 10)
    p = np.concatenate([np.linspace(0.0, 0.6, 100), np.full(10, 0.9)])
    thr = ti.pick_threshold(y, p, max_fpr=0.05)
    assert float((p[y == 0] >= thr).mean()) <= 0.05
    assert float((p[y == 0] >= thr - 0.01).mean()) > 0.05


def test_replay_auc_counts_ties_as_half() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        intent_replay = importlib.import_module("intent_replay")
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert intent_replay._auc([(1, 2.0), (0, 1.0)]) == 1.0
    assert intent_replay._auc([(1, 1.0), (0, 1.0), (0, 3.0)]) == 0.25
    assert intent_replay._auc([(0, 1.0), (1, 0.0)]) == 0.0
