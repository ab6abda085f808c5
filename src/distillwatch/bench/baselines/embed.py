"""A fast, dependency-light prompt embedding shared by the PRADA and MMD baselines.

The published detectors embed queries with a neural encoder (Liu, Guo & Dong 2026 use the
sentence encoder ``BAAI/bge-small-en-v1.5``; PRADA, Juuti et al. 2019, works on raw image
pixels). A benchmark that replays ~200k exchanges on a small CPU cannot afford one, so the
baselines share a lexical stand-in in the spirit of scikit-learn's ``HashingVectorizer``:

1. the head of the prompt (``EMBED_CHARS``), lower-cased, as UTF-8 bytes;
2. two blocks of hashed features, counted into ``2**bits`` buckets each with no alternating
   sign: word unigrams and bigrams (words: runs of ASCII letters and digits, or of non-ASCII
   bytes) and byte 3-, 4- and 5-grams;
3. a fixed-seed sparse random projection (``sklearn.random_projection.SparseRandomProjection``,
   Achlioptas / Li et al.) of each block to ``dim`` dense dimensions, each projected block
   scaled to unit length, the two added and the sum scaled to unit length.

Scaling a block after projecting it equals scaling it before (``HashingVectorizer(norm="l2")``)
up to the Johnson-Lindenstrauss distortion, which also keeps the cosine geometry of the hashed
space, what both detectors measure; it saves summing duplicate buckets. The hashing is done
in numpy (a seeded tabulation hash for words, a multiplicative hash for byte n-grams), 4-5
times faster than the pure-Python analyzers of ``HashingVectorizer``; nothing is fitted, so
nothing leaks from one data split to another, and the result is the same in every process
(no ``PYTHONHASHSEED`` dependence) and whatever the batch a text is embedded in.

>>> emb = PromptEmbedder()
>>> v = emb.embed(["What is 2 + 2?", "What is 2 + 3?", "Write a haiku about autumn leaves."])
>>> v.shape, v.dtype.name
((3, 128), 'float32')
>>> bool(v[0] @ v[1] > v[0] @ v[2])
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.random_projection import SparseRandomProjection

from distillwatch.bench.baselines.driver import Observation
from distillwatch.records import Exchange
from distillwatch.signals.text import last_user_text

Vectors = NDArray[np.float32]
_U64 = NDArray[np.uint64]
_I64 = NDArray[np.int64]

EMBED_CHARS = 1500
"""Head of the prompt that is embedded (bounded cost; templates show in the head)."""
CHUNK = 2048
"""Texts hashed at once (bounds the temporary arrays)."""

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_BIGRAM = np.uint64(0x94D049BB133111EB)
_CHAR_SALT = {3: np.uint64(0x2545F4914F6CDD1D), 4: np.uint64(0x5851F42D4C957F2D),
              5: np.uint64(0x14057B7EF767814F)}  # fmt: skip


def _mix(h: _U64) -> _U64:
    """A 64-bit finaliser (splitmix64's first rounds): spreads every input bit."""
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX
    return h ^ (h >> np.uint64(27))


class PromptEmbedder:
    """Texts to unit-length ``float32`` vectors of ``dim`` dimensions, in batches."""

    def __init__(self, dim: int = 128, *, bits: int = 18, seed: int = 20190617) -> None:
        self.dim = dim
        self.bits = bits
        self._shift = np.uint64(64 - bits)
        rng = np.random.default_rng(seed)
        self._table: _U64 = rng.integers(0, 2**63, size=(32, 256), dtype=np.uint64)
        width = 1 << bits
        projection = SparseRandomProjection(n_components=dim, density="auto", random_state=seed)
        # fit() only draws the random matrix, from the input's shape: one for both blocks
        projection.fit(sp.csr_matrix((1, 2 * width), dtype=np.float32))
        matrix = sp.csc_matrix(projection.components_, dtype=np.float32)
        self._blocks = (
            sp.csr_matrix(matrix[:, :width].T),  # word unigrams and bigrams
            sp.csr_matrix(matrix[:, width:].T),  # byte 3-, 4- and 5-grams
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit row per text, in order (a text with no features gets a zero row)."""
        parts = [self._embed(texts[i : i + CHUNK]) for i in range(0, len(texts), CHUNK)]
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(parts)

    def _embed(self, texts: Sequence[str]) -> Vectors:
        data, doc = self._bytes(texts)
        total = np.zeros((len(texts), self.dim), dtype=np.float32)
        for (rows, cols), proj in zip(
            (self._words(data, doc), self._char_grams(data, doc)), self._blocks, strict=True
        ):
            total += _unit(self._project(rows, cols, len(texts), proj))
        return _unit(total)

    def _project(self, rows: _I64, cols: _I64, n: int, proj: sp.csr_matrix) -> Vectors:
        """Bucket counts per text times the block's projection (duplicates add up in the product).

        ``rows`` is a few sorted runs, so the stable sort that groups it by text is a cheap merge;
        no sorting of buckets, no summing of duplicates.
        """
        order = np.argsort(rows, kind="stable")
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=n))))
        ones = np.ones(rows.size, dtype=np.float32)
        counts = sp.csr_matrix((ones, cols[order], indptr), shape=(n, proj.shape[0]))
        return np.asarray((counts @ proj).toarray(), dtype=np.float32)

    @staticmethod
    def _bytes(texts: Sequence[str]) -> tuple[NDArray[np.uint8], _I64]:
        """All texts' bytes, lower-cased, each followed by a 0 separator; the text of each byte."""
        raw = [t[:EMBED_CHARS].lower().encode("utf-8", "replace") + b"\0" for t in texts]
        data = np.frombuffer(b"".join(raw), dtype=np.uint8)
        doc = np.repeat(np.arange(len(raw), dtype=np.int64), [len(r) for r in raw])
        return data, doc

    def _bucket(self, h: _U64) -> _I64:
        return ((_mix(h) * _GOLDEN) >> self._shift).astype(np.int64)

    def _words(self, data: NDArray[np.uint8], doc: _I64) -> tuple[_I64, _I64]:
        word = (
            ((data >= ord("a")) & (data <= ord("z")))
            | ((data >= ord("0")) & (data <= ord("9")))
            | (data >= 0x80)
        )
        edges = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        if starts.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        lengths = ends - starts
        idx = np.flatnonzero(word)  # word bytes, in token order
        offset = idx - np.repeat(starts, lengths)  # position of each byte in its token
        vals = self._table[offset % 32, data[idx]]
        token = np.add.reduceat(vals, np.concatenate(([0], np.cumsum(lengths)[:-1])))
        tdoc = doc[starts]
        same = tdoc[:-1] == tdoc[1:]
        bigram = token[:-1][same] * _BIGRAM + token[1:][same]
        hashes = np.concatenate((token, bigram))
        return np.concatenate((tdoc, tdoc[:-1][same])), self._bucket(hashes)

    def _char_grams(self, data: NDArray[np.uint8], doc: _I64) -> tuple[_I64, _I64]:
        docs: list[_I64] = []
        buckets: list[_I64] = []
        b = data.astype(np.uint64)
        for n, salt in _CHAR_SALT.items():
            m = b.size - n + 1
            if m <= 0:
                continue
            code = np.zeros(m, dtype=np.uint64)
            for k in range(n):
                code |= b[k : k + m] << np.uint64(8 * k)
            inside = doc[:m] == doc[n - 1 :]  # no gram spans two texts
            inside &= data[n - 1 :] != 0  # nor ends on a separator
            docs.append(doc[:m][inside])
            buckets.append(self._bucket(code[inside] ^ salt))
        if not docs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(docs), np.concatenate(buckets)


def _unit(v: Vectors) -> Vectors:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    out: Vectors = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    return out


def prompt_text(e: Exchange) -> str | None:
    """The exchange's newest user prompt, or None where the log keeps no (non-blank) text."""
    text = last_user_text(e.request)
    return text if text is not None and text.strip() else None


def embed_batch(embedder: PromptEmbedder, batch: Sequence[Exchange]) -> tuple[list[int], Vectors]:
    """Positions in ``batch`` of the exchanges with prompt text, and their vectors (one call)."""
    positions: list[int] = []
    texts: list[str] = []
    for i, e in enumerate(batch):
        text = prompt_text(e)
        if text is not None:
            positions.append(i)
            texts.append(text)
    return positions, embedder.embed(texts)


class TextBaseline(ABC):
    """Plumbing shared by the baselines that read prompt text (PRADA, MMD).

    ``observe_batch`` embeds the batch's prompts in one call, then folds them in one by one,
    in order. An exchange without prompt text (no ``request``: a metadata-only log) cannot be
    measured: it is skipped, leaving the account's state as it was, and ``reasons`` says so.
    """

    name: str
    label: str

    def __init__(self, embedder: PromptEmbedder | None = None) -> None:
        self.embedder = embedder or PromptEmbedder()
        self._seen: dict[str, int] = {}
        self._skipped: dict[str, int] = {}

    @abstractmethod
    def calibrate(self, benign: Iterable[Exchange]) -> None: ...

    @abstractmethod
    def _prepare(self, vectors: Vectors) -> Any:
        """Per-batch precomputation over all the batch's vectors (passed to ``_fold``)."""

    @abstractmethod
    def _fold(self, account_id: str, vectors: Vectors, row: int, prepared: Any) -> None:
        """Fold prompt ``vectors[row]`` into the account's state."""

    @abstractmethod
    def score(self, account_id: str) -> float: ...

    @abstractmethod
    def flagged(self, account_id: str) -> bool: ...

    @abstractmethod
    def _describe(self, account_id: str) -> str:
        """One line on an account with at least one prompt."""

    def observe(self, e: Exchange) -> float:
        return self.observe_batch([e])[0].score

    def observe_batch(self, batch: Sequence[Exchange]) -> list[Observation]:
        positions, vectors = embed_batch(self.embedder, batch)
        prepared = self._prepare(vectors)
        out: list[Observation] = []
        row = 0
        for i, e in enumerate(batch):
            acct = e.account_id
            self._seen[acct] = self._seen.get(acct, 0) + 1
            if row < len(positions) and positions[row] == i:
                self._fold(acct, vectors, row, prepared)
                row += 1
            else:
                self._skipped[acct] = self._skipped.get(acct, 0) + 1
            out.append(Observation(self.score(acct), self.flagged(acct)))
        return out

    def reasons(self, account_id: str) -> list[str]:
        seen = self._seen.get(account_id, 0)
        skipped = self._skipped.get(account_id, 0)
        if not seen:
            return []
        if skipped == seen:
            return [f"no prompt text: {self.label} cannot run"]
        line = self._describe(account_id)
        if skipped:
            line += f" ({skipped} of {seen} exchanges had no prompt text and were skipped)"
        return [line]


def benign_chunks(benign: Iterable[Exchange], size: int = 4096) -> Iterator[list[Exchange]]:
    """Calibration traffic in chunks, for batched embedding (one pass over the iterable)."""
    chunk: list[Exchange] = []
    for e in benign:
        chunk.append(e)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
