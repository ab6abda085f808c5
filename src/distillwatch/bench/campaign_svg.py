"""A campaign as a picture: inline SVG computed in Python, no script, nothing fetched.

Accounts are circles (area ∝ exchanges, colour = the action taken at the end of the log);
the keys that link them are squares (side ∝ members holding the key, colour = key type);
an edge joins an account to each drawn key it holds, in its key's colour (faint to a key
most of the drawn accounts hold, so that the specific links stand out). The layout is
radial and deterministic: keys on an inner ring grouped by type, accounts on an outer ring
in the order of the mean angle of their keys, so accounts sharing keys sit together and
edges stay short. (No graph-layout library is a dependency: igraph, networkx and graphviz
are not installed, and ``scan --report`` must not need the benchmark extra.)

Large campaigns are drawn aggregated (``attribute.campaign_graph`` keeps a bounded sample):
the picture says how many accounts and keys it leaves out. Keys are labelled by type and
rank (``A2``: the campaign's second address), never by value.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from distillwatch.attribute.campaigns import Campaign

__all__ = ["ACTIONS", "FAMILIES", "Picture", "layout", "picture", "render_svg"]

FAMILIES: dict[str, tuple[str, str, str]] = {
    "card": ("#6f42c1", "payment card", "C"),
    "signup": ("#0969da", "sign-up burst", "S"),
    "ip": ("#1b7c83", "IP address", "A"),
    "switch": ("#9a6700", "model switch", "M"),
    "sync": ("#bf3989", "same-second burst", "B"),
    "net": ("#54aeff", "subnet", "N"),
    "scaffold": ("#1a7f37", "prompt scaffold", "T"),
    "agent": ("#6e7781", "user agent", "U"),
}
"""Key type → colour, legend label, label prefix (in ``keys.FAMILIES`` order)."""
OTHER_FAMILY = ("#8c959f", "other key", "K")

ACTIONS: dict[str, str] = {
    "block": "#7f1d1d",
    "protect": "#dc2626",
    "throttle": "#f59e0b",
    "monitor": "#fde68a",
    "allow": "#eaeef2",
}
"""Action → fill colour; an account without a verdict is drawn white with a dashed rim."""

WIDTH, HEIGHT = 780, 560
CX, CY = 265.0, 265.0
R_KEYS, R_ACCOUNTS, R_STAGGER = 105.0, 215.0, 13.0


@dataclass(frozen=True)
class PKey:
    label: str
    family: str
    members: int
    units: int
    weight: float
    ref: str


@dataclass(frozen=True)
class PAccount:
    account_id: str
    exchanges: int
    action: str | None


@dataclass(frozen=True)
class Picture:
    """What one picture draws: keys, accounts, who holds what, and what was left out."""

    campaign_id: str
    keys: list[PKey]
    accounts: list[PAccount]
    holds: list[list[int]]
    more_keys: int
    more_accounts: int
    note: str = ""


def _family(f: str) -> tuple[str, str, str]:
    return FAMILIES.get(f, OTHER_FAMILY)


def picture(
    campaign: Campaign,
    actions: Mapping[str, str] | None = None,
    volumes: Mapping[str, int] | None = None,
    *,
    max_accounts: int = 80,
) -> Picture:
    """The picture of ``campaign``; ``actions`` (account → action value) colour the accounts,
    ``volumes`` (account → exchanges) size them where the campaign's graph does not."""
    actions = actions or {}
    volumes = volumes or {}
    g = campaign.graph
    if g is None:  # written before campaigns carried their graph: key types, no edges
        fams = sorted(campaign.shared_keys, key=lambda f: (list(FAMILIES).index(f), f))
        keys = [
            PKey(f"{_family(f)[2]}*", f, 0, 0, round(campaign.evidence.get(f, 0.0), 4), "")
            for f in fams
            if f in FAMILIES
        ]
        drawn = campaign.accounts[:max_accounts]
        return Picture(
            campaign.campaign_id,
            keys,
            [PAccount(a, volumes.get(a, 0), actions.get(a)) for a in drawn],
            [[] for _ in drawn],
            0,
            campaign.size - len(drawn),
            "which account holds which key was not recorded: one square per key type",
        )
    rank: dict[str, int] = {}
    keys = []
    for k in g.keys:
        rank[k.family] = rank.get(k.family, 0) + 1
        label = f"{_family(k.family)[2]}{rank[k.family]}"
        ref = k.ref if k.family == "scaffold" else ""  # a sketch; other refs stay in the file
        keys.append(PKey(label, k.family, k.members, k.units, k.weight, ref))
    accounts = [
        PAccount(a, n or volumes.get(a, 0), actions.get(a))
        for a, n in zip(g.accounts, g.exchanges, strict=True)
    ]
    return Picture(
        campaign.campaign_id,
        keys,
        accounts,
        [list(h) for h in g.holds],
        g.more_keys,
        g.more_accounts,
    )


@dataclass(frozen=True)
class Layout:
    keys: list[tuple[float, float]]
    accounts: list[tuple[float, float]]


def _polar(r: float, a: float) -> tuple[float, float]:
    return (CX + r * math.cos(a), CY + r * math.sin(a))


def layout(pic: Picture) -> Layout:
    """Keys on the inner ring (grouped by type), accounts evenly on the outer one in the order
    of the mean angle of the keys they hold (two staggered rings past 36 accounts).

    >>> p = Picture("c", [PKey("C1", "card", 2, 2, 1.0, "")],
    ...             [PAccount("a", 1, None), PAccount("b", 1, None)], [[0], [0]], 0, 0)
    >>> lay = layout(p)
    >>> lay.keys, [tuple(round(v) for v in xy) for xy in lay.accounts]
    ([(265.0, 265.0)], [(265, 50), (265, 480)])
    """
    order = sorted(range(len(pic.keys)), key=lambda i: (_order(pic.keys[i].family), i))
    n_keys = len(order)
    key_angle = [0.0] * n_keys
    key_xy = [(CX, CY)] * n_keys
    for slot, i in enumerate(order):
        key_angle[i] = -math.pi / 2 + 2 * math.pi * slot / max(1, n_keys)
        if n_keys > 1:
            key_xy[i] = _polar(R_KEYS, key_angle[i])
    # a key few members hold (a card) places an account more than one all of them hold
    pull = [k.weight / max(1, k.members) for k in pic.keys]
    mean: list[float | None] = []
    for held in pic.holds:
        sx = sum(pull[i] * math.cos(key_angle[i]) for i in held)
        sy = sum(pull[i] * math.sin(key_angle[i]) for i in held)
        mean.append(math.atan2(sy, sx) if n_keys > 1 and math.hypot(sx, sy) > 1e-9 else None)
    n = len(pic.accounts)
    ranked = sorted(
        range(n),
        key=lambda j: (
            mean[j] is None,
            (mean[j] or 0.0) % (2 * math.pi),
            pic.accounts[j].account_id,
        ),
    )
    step = 2 * math.pi / max(1, n)
    # turn the ring so that the slots sit as close as possible to the accounts' own angles
    placed = [(mean[j], s) for s, j in enumerate(ranked) if mean[j] is not None]
    sx = sum(math.cos(m - s * step) for m, s in placed if m is not None)
    sy = sum(math.sin(m - s * step) for m, s in placed if m is not None)
    start = math.atan2(sy, sx) if placed and math.hypot(sx, sy) > 1e-9 else -math.pi / 2
    acct_xy = [(CX, CY)] * n
    for s, j in enumerate(ranked):
        r = R_ACCOUNTS + (R_STAGGER * (1 if s % 2 else -1) if n > 36 else 0.0)
        acct_xy[j] = _polar(r, start + s * step)
    return Layout(key_xy, acct_xy)


def _order(f: str) -> int:
    names = list(FAMILIES)
    return names.index(f) if f in names else len(names)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def footer(pic: Picture) -> str:
    """What the picture shows of the campaign, and what it leaves out.

    >>> footer(Picture("c", [], [PAccount("a", 1, None)], [[]], 3, 2310))
    '1 of 2,311 accounts drawn (+2,310 more); 0 of 3 shared keys (+3 more)'
    >>> footer(Picture("c", [], [PAccount("a", 1, None)], [[]], 0, 0))
    'all 1 account drawn; all 0 shared keys'
    """
    n_a, n_k = len(pic.accounts), len(pic.keys)
    accounts = (
        f"{n_a:,} of {n_a + pic.more_accounts:,} accounts drawn (+{pic.more_accounts:,} more)"
        if pic.more_accounts
        else f"all {_count(n_a, 'account')} drawn"
    )
    keys = (
        f"{n_k:,} of {n_k + pic.more_keys:,} shared keys (+{pic.more_keys:,} more)"
        if pic.more_keys
        else f"all {_count(n_k, 'shared key')}"
    )
    return f"{accounts}; {keys}"


def render_svg(pic: Picture) -> str:
    """The picture as an ``<svg>`` element (valid XML; no namespace URL, no script)."""
    lay = layout(pic)
    out = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="campaign {_esc(pic.campaign_id)}: accounts and the keys linking them" '
        'font-family="system-ui,sans-serif" font-size="11">',
        f"<title>campaign {_esc(pic.campaign_id)}</title>",
    ]
    # edges to a key most drawn accounts hold are drawn faint: the specific ones stand out
    holders = [0] * len(pic.keys)
    for held in pic.holds:
        for i in held:
            holders[i] += 1
    hub = [2 * h > len(pic.accounts) for h in holders]
    paths: dict[tuple[str, bool], list[str]] = {}
    for j, held in enumerate(pic.holds):
        ax, ay = lay.accounts[j]
        for i in held:
            kx, ky = lay.keys[i]
            paths.setdefault((pic.keys[i].family, hub[i]), []).append(
                f"M{_n(ax)} {_n(ay)}L{_n(kx)} {_n(ky)}"
            )
    out.append('<g fill="none" stroke-width="1">')
    for fam, faint in sorted(paths, key=lambda p: (_order(p[0]), p[1])):
        out.append(
            f'<path class="edge" data-family="{_esc(fam)}" stroke="{_family(fam)[0]}" '
            f'stroke-opacity="{0.15 if faint else 0.55}" d="{"".join(paths[fam, faint])}"/>'
        )
    out.append("</g>")
    out.extend(_keys(pic, lay))
    out.extend(_accounts(pic, lay))
    out.extend(_legend(pic))
    out.append(
        f'<text x="12" y="{HEIGHT - 10}" fill="#57606a">{_esc(footer(pic))}'
        f"{_esc('; ' + pic.note) if pic.note else ''}</text>"
    )
    out.append("</svg>")
    return "\n".join(out)


def _keys(pic: Picture, lay: Layout) -> list[str]:
    out = ['<g class="keys" stroke="#1b1f24" stroke-width="0.6">']
    top = max((k.members for k in pic.keys), default=0) or 1
    for k, (x, y) in zip(pic.keys, lay.keys, strict=True):
        side = 9.0 + 9.0 * math.sqrt(k.members / top)
        held = f"held by {k.members:,} members ({k.units:,} holders in all)" if k.units else ""
        tip = " · ".join(
            p for p in (k.label, _family(k.family)[1], held, f"weight {k.weight:g}", k.ref) if p
        )
        out.append(
            f'<rect class="key" data-family="{_esc(k.family)}" x="{_n(x - side / 2)}" '
            f'y="{_n(y - side / 2)}" width="{_n(side)}" height="{_n(side)}" rx="2" '
            f'fill="{_family(k.family)[0]}"><title>{_esc(tip)}</title></rect>'
        )
        # the label toward the centre (edges go outward); a lone key's label below it
        dx, dy = CX - x, CY - y
        d = math.hypot(dx, dy)
        ux, uy = (dx / d, dy / d) if d > 1e-9 else (0.0, -1.0)
        lx, ly = x + ux * (side / 2 + 9), y + uy * (side / 2 + 9) + 4
        out.append(
            f'<text x="{_n(lx)}" y="{_n(ly)}" text-anchor="middle" stroke="none" '
            f'fill="#1b1f24" font-size="10">{_esc(k.label)}</text>'
        )
    out.append("</g>")
    return out


def _accounts(pic: Picture, lay: Layout) -> list[str]:
    out = ['<g class="accounts" stroke="#1b1f24" stroke-width="0.6">']
    top = max((a.exchanges for a in pic.accounts), default=0) or 1
    for a, held, (x, y) in zip(pic.accounts, pic.holds, lay.accounts, strict=True):
        r = 2.5 + 7.5 * math.sqrt(a.exchanges / top)
        fill = ACTIONS.get(a.action or "", "#ffffff")
        dash = "" if a.action in ACTIONS else ' stroke-dasharray="2 1.5"'
        keys = ", ".join(pic.keys[i].label for i in held) or "none drawn"
        tip = (
            f"{a.account_id} · {a.action or 'no verdict'} · {a.exchanges:,} exchanges · keys {keys}"
        )
        out.append(
            f'<circle class="account" cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" fill="{fill}"'
            f"{dash}><title>{_esc(tip)}</title></circle>"
        )
    out.append("</g>")
    return out


def _legend(pic: Picture) -> list[str]:
    x, y = 545.0, 28.0
    out = [f'<g class="legend"><text x="{x}" y="{y}" font-weight="600">accounts</text>']
    y += 6
    out.append(
        f'<text x="{x}" y="{y + 12}" fill="#57606a" font-size="10">circle area ∝ exchanges; '
        "colour = action</text>"
    )
    y += 20
    present = {a.action if a.action in ACTIONS else None for a in pic.accounts}
    for name, colour in [*ACTIONS.items(), ("no verdict", "#ffffff")]:
        if (name if name in ACTIONS else None) not in present:
            continue
        dash = "" if name in ACTIONS else ' stroke-dasharray="2 1.5"'
        out.append(
            f'<circle cx="{x + 7}" cy="{y + 7}" r="6" fill="{colour}" stroke="#1b1f24" '
            f'stroke-width="0.6"{dash}/><text x="{x + 20}" y="{y + 11}">{_esc(name)}</text>'
        )
        y += 18
    y += 14
    out.append(f'<text x="{x}" y="{y}" font-weight="600">linking keys</text>')
    out.append(
        f'<text x="{x}" y="{y + 18}" fill="#57606a" font-size="10">square ∝ members holding '
        "it; edge = holds</text>"
    )
    y += 26
    families = sorted({k.family for k in pic.keys}, key=_order)
    for fam in families:
        colour, name, prefix = _family(fam)
        out.append(
            f'<line x1="{x}" y1="{y + 7}" x2="{x + 14}" y2="{y + 7}" stroke="{colour}" '
            f'stroke-width="2"/><rect x="{x + 3}" y="{y + 2}" width="10" height="10" rx="2" '
            f'fill="{colour}" stroke="#1b1f24" stroke-width="0.6"/>'
            f'<text x="{x + 20}" y="{y + 11}">{_esc(prefix)}1, {_esc(prefix)}2 … '
            f"{_esc(name)}</text>"
        )
        y += 18
    out.append("</g>")
    return out


def families_table(pic: Picture, campaign: Campaign) -> list[list[str]]:
    """Evidence by key type: weight of the shared keys, how many, which ones are drawn."""
    drawn: dict[str, list[str]] = {}
    for k in pic.keys:
        drawn.setdefault(k.family, []).append(k.label)
    fams = sorted(set(campaign.evidence) | set(campaign.shared_keys) | set(drawn), key=_order)
    return [
        [
            _family(f)[1],
            f"{campaign.evidence.get(f, 0.0):.3f}",
            f"{campaign.shared_keys.get(f, 0):,}",
            _labels(drawn.get(f, [])),
        ]
        for f in fams
    ]


def _labels(labels: Sequence[str]) -> str:
    if len(labels) <= 4:
        return ", ".join(labels) or "—"
    return f"{labels[0]} … {labels[-1]}"
