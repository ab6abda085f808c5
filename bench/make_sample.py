"""Rebuild ``src/distillwatch/bench/sample/`` from ``shared/data`` (permissive sources only).

The sample lets ``make demo`` and the tests run where ``shared/data`` is absent. It takes a
deterministic excerpt of each source whose licence allows redistribution (Apache-2.0, MIT,
CC BY 4.0 with attribution in SOURCES.md); CC BY-NC and unlicensed sources never enter it.
The dev/test split (``sources.split_of``) is applied when the sample is loaded, so both
splits come from it; ``build`` checks that each has kind A and kind B prompts.

    python bench/make_sample.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
from pathlib import Path

from distillwatch.bench.sources import KINDS, SAMPLE_DIR, find_data_dir, load_pools

# source -> how many conversations to keep (all permissively licensed; see SOURCES.md)
KEEP = {
    "koala": 180,
    "oasst": 350,
    "mt-bench": 80,
    "vicuna": 80,
    "hh-rlhf": 260,
    "self-instruct": 300,
    "gsm8k": 500,
    "humaneval": 164,
}
TRACE_ROWS = {"azure-conv": 3000, "azure-code": 1500, "mooncake-conv": 1500}
MAX_REPLY = 400  # characters kept of each hh-rlhf assistant turn


def _stable_order(items: list[str]) -> list[int]:
    return sorted(range(len(items)), key=lambda i: hashlib.sha256(items[i].encode()).hexdigest())


def _write_gz(path: Path, text: str) -> None:
    # mtime=0 so rebuilding the sample gives the same bytes
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.encode("utf-8"))


def build(data_dir: Path) -> None:
    pools = load_pools(data_dir)
    lines = []
    for source, n in KEEP.items():
        convs = pools[source]
        order = _stable_order(["\n".join(c.turns) for c in convs])[:n]
        for i in sorted(order):
            c = convs[i]
            rec: dict[str, object] = {"source": source, "turns": list(c.turns)}
            if c.replies:
                rec["replies"] = [r[:MAX_REPLY] for r in c.replies]
            lines.append(json.dumps(rec, ensure_ascii=False))
    SAMPLE_DIR.mkdir(exist_ok=True)
    _write_gz(SAMPLE_DIR / "prompts.jsonl.gz", "\n".join(lines) + "\n")

    az = data_dir / "azure-llm-inference-2023"
    for name, fname in (("azure-conv", "conv"), ("azure-code", "code")):
        with (az / f"AzureLLMInferenceTrace_{fname}.csv").open(encoding="utf-8") as f:
            rows = list(csv.reader(f))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows[: TRACE_ROWS[name] + 1])
        _write_gz(SAMPLE_DIR / f"azure_{fname}.csv.gz", buf.getvalue())

    out = []
    with gzip.open(
        data_dir / "mooncake-traces" / "conversation_trace.jsonl.gz", "rt", encoding="utf-8"
    ) as f:
        for line, _ in zip(f, range(TRACE_ROWS["mooncake-conv"]), strict=False):
            r = json.loads(line)
            keep = ("timestamp", "input_length", "output_length")
            out.append(json.dumps({k: r[k] for k in keep}))
    _write_gz(SAMPLE_DIR / "mooncake_conversation.jsonl.gz", "\n".join(out) + "\n")
    total = sum(p.stat().st_size for p in SAMPLE_DIR.iterdir())
    print(f"wrote {SAMPLE_DIR} ({total / 1024:.0f} KiB)")
    load_pools.cache_clear()
    for split in ("dev", "test"):
        pools = load_pools(None, split)
        kinds = {KINDS[s] for s in pools}
        if kinds != {"A", "B"}:
            raise SystemExit(f"the sample's {split} split lacks kind {{'A', 'B'}} - {kinds}")
        print(f"  {split}: " + ", ".join(f"{s} {len(cs)}" for s, cs in sorted(pools.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="shared/data folder")
    args = ap.parse_args()
    data_dir = args.data or find_data_dir()
    if data_dir is None:
        raise SystemExit("shared/data not found: pass --data")
    build(data_dir)


if __name__ == "__main__":
    main()
