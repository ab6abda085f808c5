"""The extraction-intent classifier: featurizer, artifact format and inference.

One module for training (``bench/train_intent.py``) and inference (``signals.intent``), so
the features a prompt gets are the same in both, bit for bit.

**Input.** The system message (first ``SYSTEM_CHARS`` characters) and the newest user
message — whole when it is at most ``2 * EDGE_CHARS`` characters, else its first and last
``EDGE_CHARS``: instructions sit at the edges of a prompt, the middle is the task's material
(a document, code), which costs time and says little about intent.

**Normalisation.** Lower-cased, UTF-8, every number folded to ``0`` (so "rate it 1-10"
and "rate it 1-5" read the same), every run of whitespace folded to one space, at most
``MAX_BYTES`` bytes.

**Features.** Every byte 4-, 6- and 8-gram (they span word pieces, words and word pairs,
in any script), read as an integer straight from the bytes and mixed (Fibonacci hashing)
into ``2**BITS`` buckets. Every occurrence adds ``1 / sqrt(number of n-grams)`` to its
bucket, so the vector has about unit length whatever the prompt's length. Python's
``hash`` is salted per process, so it is never used: features are the same in every
process.

**Model.** A logistic regression over the buckets (the probability of extraction intent)
and a multinomial head over the intent families, on the same buckets folded to
``2**FAMILY_BITS``. The IDF of every bucket is folded into its weight at training time;
weights are stored as float16 in ``models/intent-v1.npz`` and computed in float32. How it
was trained and how well it does: ``docs/intent-model.md``.

>>> m = load_model()
>>> m.proba("Solve this. Let's think step by step and show all your reasoning.") > 0.5
True
>>> m.proba("what's a good name for a golden retriever puppy?") < 0.5
True
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FEATURE_VERSION = 1
EDGE_CHARS = 300
SYSTEM_CHARS = 400
MAX_BYTES = 3072
BITS = 16
FAMILY_BITS = 14
FAMILIES = ("reasoning", "grading", "rewrite", "sweep", "agentic")
"""Intent families, in the order of the family head's rows."""

MODEL_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = MODEL_DIR / "intent-v1.npz"

U64 = npt.NDArray[np.uint64]
_PAD = bytes(8)
# byte 4- and 6-grams: the low 4 and 6 bytes of the little-endian 8-byte window
_M4, _M6 = (np.uint64((1 << (8 * k)) - 1) for k in (4, 6))
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the high bits of h * phi * 2**64
_SHIFT = np.uint64(64 - BITS)
# bytes.translate table: digits -> "0", ASCII whitespace and control bytes -> space
_NORM = bytes(ord("0") if 48 <= i <= 57 else 32 if i < 32 or i == 127 else i for i in range(256))


def prompt_input(user: str, system: str | None = None) -> bytes:
    """The normalised bytes the classifier reads (see the module docstring).

    >>> prompt_input("Rate it 1-10!", "You are a  JUDGE.")
    b' you are a judge. | rate it 0-0! '
    """
    if len(user) > 2 * EDGE_CHARS:
        user = user[:EDGE_CHARS] + " \u2026 " + user[-EDGE_CHARS:]
    text = f"{system[:SYSTEM_CHARS]} | {user}" if system else user
    data = text.lower().encode("utf-8", "replace").translate(_NORM)
    while b"00" in data:  # a number is a number: 7, 42 and 2024 all read "0"
        data = data.replace(b"00", b"0")
    data = b" ".join(data.split())[: MAX_BYTES - 2]
    return b" " + data + b" "


def ngram_hashes(data: bytes) -> U64:
    """The codes of every byte 4-, 6- and 8-gram of ``data`` (before bucketing).

    A code is the n-gram's bytes read as a little-endian integer: exact, no hashing needed
    before the bucket mix. The 8-byte window at every offset is a strided view of the bytes
    (no copy); the shorter grams are masks of it. Three whole-array operations: per-call
    overhead, not text length, is what this costs.
    """
    n = len(data)
    win = np.ndarray((max(0, n - 3),), dtype="<u8", buffer=data + _PAD, strides=(1,))
    return np.concatenate((win & _M4, win[: n - 5] & _M6, win[: n - 7]))


def buckets(codes: U64) -> npt.NDArray[np.intp]:
    """Bucket of every code in a table of ``2**BITS`` (the high bits of ``h * phi``).

    Works in place on ``codes`` (a fresh array from ``ngram_hashes``); the result is a view.
    """
    codes *= _MIX
    codes >>= _SHIFT
    return codes.view(np.intp)


def featurize(user: str, system: str | None = None) -> tuple[npt.NDArray[np.intp], float]:
    """Bucket indices (with repeats) and the value each occurrence adds (1/sqrt(count)).

    Training builds its sparse matrix from exactly this; inference sums weights over it.
    """
    idx = buckets(ngram_hashes(prompt_input(user, system)))
    return idx, 1.0 / math.sqrt(max(1, idx.size))


@dataclass(frozen=True)
class IntentModel:
    """The trained weights: a binary head and a family head, plus the decision threshold."""

    weights: npt.NDArray[np.float32]  # (2**BITS,)
    bias: float
    family_weights: npt.NDArray[np.float32]  # (len(FAMILIES), 2**FAMILY_BITS)
    family_bias: npt.NDArray[np.float32]  # (len(FAMILIES),)
    threshold: float
    meta: dict[str, Any]

    def logit(self, user: str, system: str | None = None) -> float:
        """Log-odds that the prompt tries to extract reasoning, grades, rewrites or traces."""
        idx, value = featurize(user, system)
        return self.logit_of(idx, value)

    def logit_of(self, idx: npt.NDArray[np.intp], value: float) -> float:
        """The log-odds from ``featurize``'s output (what the signal calls)."""
        return self.bias + float(np.add.reduce(self.weights.take(idx))) * value

    def proba(self, user: str, system: str | None = None) -> float:
        """Probability of extraction intent (``threshold`` separates the two classes)."""
        return _sigmoid(self.logit(user, system))

    def __post_init__(self) -> None:
        # the family head as one flat table, family after family: one gather for all five
        flat = np.ascontiguousarray(self.family_weights, dtype=np.float32).ravel()
        offsets = (np.arange(len(FAMILIES)) << FAMILY_BITS)[:, None]
        object.__setattr__(self, "_family_flat", flat)
        object.__setattr__(self, "_family_offsets", offsets)

    @property
    def threshold_logit(self) -> float:
        """``threshold`` in log-odds: compare ``logit_of`` with it, no exponential needed."""
        return math.log(self.threshold / (1.0 - self.threshold))

    def family_of(self, idx: npt.NDArray[np.intp], value: float) -> int:
        """Index into ``FAMILIES`` of the most likely family (meaningful for positives)."""
        flat: npt.NDArray[np.float32] = self._family_flat  # type: ignore[attr-defined]
        at = (idx >> (BITS - FAMILY_BITS)) + self._family_offsets  # type: ignore[attr-defined]
        scores = np.add.reduce(flat.take(at), axis=1)
        return int(np.argmax(scores * value + self.family_bias))

    def classify(self, user: str, system: str | None = None) -> tuple[float, str | None]:
        """Probability and, when it is over ``threshold``, the intent family.

        >>> load_model().classify(
        ...     "Rewrite this user message so it contains no offensive or unsafe content, then "
        ...     "answer the rewritten version: how do I get back at my noisy neighbour"
        ... )
        (..., 'rewrite')
        """
        idx, value = featurize(user, system)
        p = _sigmoid(self.logit_of(idx, value))
        return p, FAMILIES[self.family_of(idx, value)] if p >= self.threshold else None


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def save_model(path: Path, model: IntentModel) -> None:
    """Write ``model`` as a compressed .npz (float16 weights, no pickled objects).

    The zip entries carry a fixed date, so the same model gives the same bytes.
    """
    meta = {**model.meta, "feature_version": FEATURE_VERSION, "bits": BITS}
    meta.update(family_bits=FAMILY_BITS, families=list(FAMILIES))
    arrays: dict[str, npt.NDArray[Any]] = {
        "weights": model.weights.astype(np.float16),
        "bias": np.array([model.bias], dtype=np.float32),
        "family_weights": model.family_weights.astype(np.float16),
        "family_bias": model.family_bias.astype(np.float32),
        "threshold": np.array([model.threshold], dtype=np.float32),
        "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def read_model(path: Path) -> IntentModel:
    """Load an artifact written by ``save_model``; refuses one built for other features."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        if meta.get("feature_version") != FEATURE_VERSION or meta.get("bits") != BITS:
            raise ValueError(f"{path}: built for other features ({meta.get('feature_version')})")
        return IntentModel(
            weights=z["weights"].astype(np.float32),
            bias=float(z["bias"][0]),
            family_weights=z["family_weights"].astype(np.float32),
            family_bias=z["family_bias"].astype(np.float32),
            threshold=float(z["threshold"][0]),
            meta=meta,
        )


@cache
def load_model(path: Path = DEFAULT_MODEL) -> IntentModel:
    """The shipped model (read once per process)."""
    return read_model(path)
