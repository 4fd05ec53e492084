"""Check records -> one self-contained HTML page with pictures (inline SVG, no network).

Per check, failing ones first: the output value distributions of base and variants (a
quantile plot: min, q01 ... q99, max; the golden dashed beside the current run), and the
drift of every compared statistic against its tolerance (a log-scale bar chart with the
tolerance line), then the tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from . import training
from .records import QUANTILE_LEVELS, counts, kept_rows, label, number, ordered
from .text import value_text

#: Re-exported: the number format moved to :mod:`.text` (``value_text``).
text = value_text

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
OK_COLOR = "#2ca02c"
BAD_COLOR = "#d62728"
#: Statistics drawn per check in the drift chart (the largest drifts).
DRIFT_BARS = 24
#: Compared values listed for a check whose values all held (all of a failing check's are).
TABLE_ROWS = 12
#: The drift chart's log10 range of |difference| / allowed (the top grows with the data).
LOG_MIN, LOG_MAX = -4.0, 2.0

_STATUS_COLORS = {
    "passed": OK_COLOR,
    "recorded": "#1f77b4",
    "updated": "#1f77b4",
    "not written": "#ff7f0e",
}

_GOOD = ("passed", "recorded", "updated")

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:0 0 6px}
.check{border:1px solid #ddd;border-radius:6px;padding:14px 16px;margin:18px 0}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:1px 8px;font-size:12px;
 margin-right:8px;vertical-align:2px}
.meta{color:#555;margin:2px 0} .cause{color:#a00}
table{border-collapse:collapse;margin:6px 0;font-size:12.5px}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left} th{background:#f5f5f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde8e8}
.figs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
figure{margin:6px 0} figcaption{font-size:12px;color:#555}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
code{font-size:12.5px}
"""


def _finite(value: Any) -> float | None:
    """A finite number, or None."""
    found = number(value)
    return found if found is not None and math.isfinite(found) else None


# -- pictures -------------------------------------------------------------------------------


def quantile_plot(
    output: str,
    current: Mapping[str, Mapping[str, Any]],
    recorded: Mapping[str, Mapping[str, Any]],
    base: str | None,
) -> str:
    """SVG: value at each quantile level (min, q01 ... q99, max), one line per variant;
    the golden's as a dashed line of the same colour."""
    levels = list(QUANTILE_LEVELS.items())
    series: list[tuple[str, str, bool, list[tuple[int, float]]]] = []
    names = list(current) + [n for n in recorded if n not in current]
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        for dashed, source in ((True, recorded), (False, current)):
            points = source.get(name, {}).get(output, {}).get("quantiles", {})
            pts = [
                (j, v)
                for j, (_, level) in enumerate(levels)
                if (v := _finite(points.get(str(level)))) is not None
            ]
            if pts:
                series.append((name, color, dashed, pts))
    values = [v for *_, pts in series for _, v in pts]
    if not values:
        return ""
    legend_rows = (len(dict.fromkeys(name for name, *_ in series)) + 1) // 2
    width, left, right, top, plot_h = 460, 58, 12, 14, 170
    bottom = 26 + 14 * legend_rows
    height = top + plot_h + bottom
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad
    plot_w = width - left - right

    def x(j: int) -> float:
        return left + plot_w * j / (len(levels) - 1)

    def y(v: float) -> float:
        return top + plot_h * (hi - v) / (hi - lo)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="output value quantiles of {escape(output)}">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">'
            f"{v:.3g}</text>"
        )
    for j, (key, _) in enumerate(levels):
        parts.append(
            f'<text x="{x(j):.1f}" y="{top + plot_h + 13}" font-size="10" '
            f'text-anchor="middle">{key}</text>'
        )
    for name, color, dashed, pts in series:
        path = " ".join(f"{x(j):.1f},{y(v):.1f}" for j, v in pts)
        dash = ' stroke-dasharray="5,4" stroke-opacity="0.8"' if dashed else ""
        widthpx = 1.5 if dashed else 2.2
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" '
            f'stroke-width="{widthpx}"{dash}><title>{escape(name)}'
            f"{' (golden)' if dashed else ''}</title></polyline>"
        )
        if not dashed:
            parts.extend(
                f'<circle cx="{x(j):.1f}" cy="{y(v):.1f}" r="2.6" fill="{color}"/>' for j, v in pts
            )
    parts.extend(_legend(series, names, base, left, top + plot_h + 28, plot_w, heights=(4, 4)))
    parts.append("</svg>")
    return "".join(parts)


def _legend(
    series: Sequence[Sequence[Any]],
    names: Sequence[str],
    base: str | None,
    left: int,
    legend_y: int,
    plot_w: int,
    *,
    heights: tuple[int, int],
) -> list[str]:
    """A chart's legend, two columns: each variant's colour as a bar ``heights`` high (a
    variant's, the base's: a loss plot draws its base thicker) and its name."""
    parts = []
    shown = list(dict.fromkeys(name for name, *_ in series))
    for i, name in enumerate(shown):
        color = PALETTE[names.index(name) % len(PALETTE)]
        lx = left + (i % 2) * (plot_w // 2)
        ly = legend_y + (i // 2) * 14
        tag = " (base)" if name == base else ""
        thick = heights[1] if name == base else heights[0]
        parts.append(
            f'<rect x="{lx}" y="{ly - 6 - thick // 2}" width="12" height="{thick}" '
            f'fill="{color}"/>'
            f'<text x="{lx + 16}" y="{ly - 3}" font-size="10.5">{escape(name + tag)}</text>'
        )
    return parts


def drift_chart(statistics: Sequence[Mapping[str, Any]]) -> str:
    """SVG: |difference| / allowed of the compared values with the largest drifts, on a log
    scale, with the tolerance (1.0) marked; bars past it are red."""
    rows = [s for s in statistics if s["allowed"] is not None or not s["ok"]]

    def ratio(s: Mapping[str, Any]) -> float:
        r = number(s["ratio"])
        return float("inf") if r is None else r

    if not rows:
        return ""
    if all(ratio(s) == 0 for s in rows):
        return f"<p class=meta>no drift: all {len(rows)} values equal their golden's</p>"
    finite = [ratio(s) for s in rows if math.isfinite(ratio(s)) and ratio(s) > 0]
    log_max = max(LOG_MAX, math.ceil(math.log10(max(finite)))) if finite else LOG_MAX

    rows = sorted(rows, key=lambda s: (-ratio(s), s["variant"], s["where"], s["stat"]))
    hidden = max(0, len(rows) - DRIFT_BARS)
    rows = rows[:DRIFT_BARS]
    name_w, bar_w, row_h, top = 300, 300 + 40 * int(log_max - LOG_MAX), 15, 20
    x, parts, height = _log_chart(name_w, bar_w, top, row_h * len(rows), log_max, "each statistic")
    for i, s in enumerate(rows):
        r = ratio(s)
        yy = top + i * row_h
        ok = bool(s["ok"])
        color = OK_COLOR if ok else BAD_COLOR
        name = f"{s['variant']} / {s['where']} / {s['stat']}"
        if len(name) > 46:
            name = "…" + name[-45:]
        end = x(r) if math.isfinite(r) else name_w + bar_w
        value = "exact" if s["allowed"] is None else f"{r:.2g}"
        parts.append(
            f'<text x="{name_w - 6}" y="{yy + 10}" font-size="10.5" text-anchor="end">'
            f"{escape(name)}</text>"
            f'<rect x="{name_w}" y="{yy + 2}" width="{max(end - name_w, 1.5):.1f}" '
            f'height="{row_h - 5}" fill="{color}"><title>{escape(name)}: {value}</title></rect>'
            f'<text x="{max(end, name_w) + 4:.1f}" y="{yy + 10}" font-size="10">{value}</text>'
        )
    tx = x(1.0)
    parts.append(
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 8}" y2="{height - 22}" '
        f'stroke="{BAD_COLOR}" stroke-width="1.5" stroke-dasharray="4,3"/>'
        f'<text x="{tx + 3:.1f}" y="{top - 9}" font-size="10" fill="{BAD_COLOR}">'
        "tolerance</text>"
    )
    parts.append("</svg>")
    more = f" ({hidden} smaller drifts not drawn)" if hidden else ""
    return "".join(parts) + (f"<div class=meta>{more}</div>" if more else "")


#: Losses drawn with a marker on each step up to this many steps (a line alone beyond).
LOSS_MARKERS = 40
#: The loss plot's y axis is logarithmic when its positive losses span this factor or more.
LOG_SPAN = 100.0


def loss_plot(part: Mapping[str, Any]) -> str:
    """SVG: the loss at each step, one line per variant (the base drawn thicker), this run's
    solid with a marker per step, the golden's dashed in the same colour; a logarithmic y axis
    when the losses span decades. One step draws as markers, a hundred as lines."""
    entries: Mapping[str, Any] = part.get("variants") or {}
    base = part.get("base")
    series: list[tuple[str, str, bool, list[tuple[int, float]]]] = []
    skipped: list[str] = []
    names = list(entries)
    for i, name in enumerate(names):
        entry = entries[name]
        color = PALETTE[i % len(PALETTE)]
        index = entry.get("step_index")
        for dashed, key in ((True, "golden_losses"), (False, "losses")):
            values = entry.get(key)
            if not isinstance(values, list):
                continue
            steps = index if isinstance(index, list) else list(range(len(values)))
            pts = []
            for step, raw in zip(steps, values, strict=False):
                value = _finite(raw)
                if value is None:
                    if raw is not None:  # None: a step this side did not run
                        skipped.append(f"{name}{' (golden)' if dashed else ''} step {step}")
                    continue
                pts.append((int(step), value))
            if pts:
                series.append((name, color, dashed, pts))
    values = [v for *_, pts in series for _, v in pts]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    log = lo > 0 and hi / lo >= LOG_SPAN
    if log:
        lo_t, hi_t = math.log10(lo), math.log10(hi)
        pad = (hi_t - lo_t) * 0.05
        lo_t, hi_t = lo_t - pad, hi_t + pad
    else:
        if hi == lo:
            lo, hi = lo - (abs(lo) * 0.1 or 1.0), hi + (abs(hi) * 0.1 or 1.0)
        pad = (hi - lo) * 0.05
        lo_t, hi_t = lo - pad, hi + pad
    first = min(step for *_, pts in series for step, _ in pts)
    last = max(step for *_, pts in series for step, _ in pts)
    legend_rows = (len(dict.fromkeys(name for name, *_ in series)) + 1) // 2
    width, left, right, top, plot_h = 460, 66, 14, 14, 170
    bottom = 40 + 14 * legend_rows
    height = top + plot_h + bottom
    plot_w = width - left - right

    def x(step: float) -> float:
        if last == first:  # one step: in the middle
            return left + plot_w / 2
        return left + 8 + (plot_w - 16) * (step - first) / (last - first)

    def y(v: float) -> float:
        t = math.log10(v) if log else v
        return top + plot_h * (hi_t - t) / (hi_t - lo_t)

    scale = "log scale" if log else "linear scale"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="loss per step of each variant ({scale})">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    if log:
        ticks = [10.0**k for k in range(math.ceil(lo_t), math.floor(hi_t) + 1)]
        if len(ticks) < 2:
            ticks = [10**lo_t, 10**hi_t]
    else:
        ticks = [lo_t + (hi_t - lo_t) * k / 4 for k in range(5)]
    for v in ticks:
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">'
            f"{v:.3g}</text>"
        )
    spacing = _tick_spacing(last - first)
    for step in range(-(-first // spacing) * spacing, last + 1, spacing):
        parts.append(
            f'<text x="{x(step):.1f}" y="{top + plot_h + 13}" font-size="10" '
            f'text-anchor="middle">{step}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 26}" font-size="10" '
        'text-anchor="middle" fill="#555">step</text>'
        f'<text transform="translate(11,{top + plot_h / 2:.1f}) rotate(-90)" font-size="10" '
        f'text-anchor="middle" fill="#555">loss ({scale})</text>'
    )
    for name, color, dashed, pts in series:
        path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in pts)
        dash = ' stroke-dasharray="5,4" stroke-opacity="0.8"' if dashed else ""
        widthpx = 1.5 if dashed else (2.8 if name == base else 1.8)
        title = f"{escape(name)}{' (base)' if name == base else ''}"
        title += " (golden)" if dashed else ""
        if len(pts) > 1:
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" '
                f'stroke-width="{widthpx}"{dash}><title>{title}</title></polyline>'
            )
        if dashed and len(pts) == 1:  # one step of the golden: a hollow ring
            s, v = pts[0]
            parts.append(
                f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="5" fill="none" stroke="{color}" '
                f'stroke-width="1.5"><title>{title}: {v:.6g}</title></circle>'
            )
        if not dashed and len(pts) <= LOSS_MARKERS:
            radius = 3.4 if name == base else 2.6
            parts.extend(
                f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="{radius}" fill="{color}">'
                f"<title>{title}, step {s}: {v:.6g}</title></circle>"
                for s, v in pts
            )
    parts.extend(_legend(series, names, base, left, top + plot_h + 42, plot_w, heights=(3, 5)))
    parts.append("</svg>")
    note = (
        f"<div class=meta>not drawn (not a finite number): {escape(', '.join(skipped[:6]))}"
        f"{' ...' if len(skipped) > 6 else ''}</div>"
        if skipped
        else ""
    )
    return "".join(parts) + note


def _tick_spacing(span: int, ticks: int = 8) -> int:
    """Integer step spacing 1, 2, 5, 10, 20, 50 ... giving at most ``ticks`` + 1 labels."""
    spacing = 1
    for _ in range(30):
        for factor in (1, 2, 5):
            if span <= ticks * spacing * factor:
                return spacing * factor
        spacing *= 10
    return spacing


#: Layer outputs drawn per variant in the per-layer drift chart.
LAYER_BARS = 200
#: Held layer outputs drawn before the first moved one when it lies beyond ``LAYER_BARS``.
LAYER_CONTEXT = 20


def layer_chart(located: Mapping[str, Any]) -> str:
    """SVG: each layer output's largest drift / tolerance, in execution order (top to
    bottom), on a log scale with the tolerance marked: the first red bar is the culprit."""
    drifts = located.get("drifts") or []
    if not drifts:
        return ""

    def ratio(value: Any) -> float:
        r = number(value)
        return float("inf") if r is None else r

    finite = [ratio(d[2]) for d in drifts if math.isfinite(ratio(d[2])) and ratio(d[2]) > 0]
    log_max = max(LOG_MAX, math.ceil(math.log10(max(finite)))) if finite else LOG_MAX
    # the first moved one is drawn however deep it is: a few held ones before it, then on
    first = next((i for i, d in enumerate(drifts) if ratio(d[2]) > 1.0), 0)
    start = max(0, min(first - LAYER_CONTEXT, len(drifts) - LAYER_BARS))
    shown = drifts[start : start + LAYER_BARS]
    name_w, bar_w, row_h, top = 260, 300 + 40 * int(log_max - LOG_MAX), 12, 20
    x, parts, height = _log_chart(
        name_w, bar_w, top, row_h * len(shown), log_max, "each layer output"
    )
    for i, (name, kind, value) in enumerate(shown):
        r = ratio(value)
        yy = top + i * row_h
        color = OK_COLOR if r <= 1.0 else BAD_COLOR
        label_text = f"{name} ({kind})"
        if len(label_text) > 40:
            label_text = "…" + label_text[-39:]
        end = x(r) if math.isfinite(r) else name_w + bar_w
        text = "changed" if not math.isfinite(r) else f"{r:.2g}"
        parts.append(
            f'<text x="{name_w - 6}" y="{yy + 9}" font-size="9.5" text-anchor="end">'
            f"{escape(label_text)}</text>"
            f'<rect x="{name_w}" y="{yy + 2}" width="{max(end - name_w, 1.5):.1f}" '
            f'height="{row_h - 4}" fill="{color}"><title>{escape(label_text)}: {text}</title>'
            "</rect>"
        )
    tx = x(1.0)
    parts.append(
        f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 8}" y2="{height - 22}" '
        f'stroke="{BAD_COLOR}" stroke-width="1.5" stroke-dasharray="4,3"/>'
        f'<text x="{tx + 3:.1f}" y="{top - 9}" font-size="10" fill="{BAD_COLOR}">'
        "tolerance</text></svg>"
    )
    hidden = len(drifts) - len(shown) - start
    earlier = (
        f"<div class=meta>({start} earlier layer outputs, all within tolerance, not drawn)</div>"
        if start
        else ""
    )
    return (
        earlier
        + "".join(parts)
        + (f"<div class=meta>({hidden} later layer outputs not drawn)</div>" if hidden else "")
    )


def _layer_parts(record: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The first moved/changed layer lines, and one per-layer drift figure per variant."""
    lines, figures = [], []
    for located in record.get("layers") or []:
        first = located.get("first")
        variant = escape(str(located.get("variant")))
        if first is not None:
            word = "changed" if located.get("status") == "changed" else "moved"
            lines.append(
                f'<div class="cause">first {word} layer: <code>{escape(str(first["name"]))}'
                f"</code> ({escape(str(first['type']))}), variant {variant}: "
                f"{escape(str(first['detail']))}</div>"
            )
        elif located.get("note"):
            lines.append(
                f'<div class="meta">layers (variant {variant}): '
                f"{escape(str(located['note']))}</div>"
            )
        svg = layer_chart(located)
        if svg:
            figures.append(
                f"<figure>{svg}<figcaption>variant <b>{variant}</b>: drift of each layer "
                "output / its tolerance, in execution order</figcaption></figure>"
            )
    return lines, figures


def _training_parts(record: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """A training check's lines (what it trained; what moved, for a failing one), its loss
    plot, and its tables (per variant; the norm ratios to the base farthest from 1)."""
    part = record.get("training")
    if not isinstance(part, Mapping):
        return [], [], []
    lines = [f'<div class="meta">{escape(training.description(part))}</div>']
    if record["status"] not in _GOOD:
        items: list[list[str]] = []
        for line in training.moved_lines(part):
            if line.startswith("  ") and items:
                items[-1].append(line.strip())
            else:
                items.append([line])
        if items:
            lines.append(
                '<div class="cause">what moved in training:<ul>'
                + "".join(
                    f"<li>{escape(head)}<ul>"
                    + "".join(f"<li>{escape(item)}</li>" for item in rest)
                    + "</ul></li>"
                    for head, *rest in items
                )
                + "</ul></div>"
            )
    figures = []
    svg = loss_plot(part)
    if svg:
        caption = "loss per step per variant"
        if any(e.get("golden_losses") for e in (part.get("variants") or {}).values()):
            caption += " (dashed: golden)"
        figures.append(f"<figure>{svg}<figcaption>{caption}</figcaption></figure>")
    entries: Mapping[str, Any] = part.get("variants") or {}
    body = []
    for variant, final, golden_final, ratio, frozen in training.markdown_rows(part):
        name = variant.removesuffix(" (base)")
        entry = entries.get(name, {})
        body.append(
            (
                False,
                (
                    variant,
                    entry.get("loss"),
                    entry.get("optimizer"),
                    entry.get("lr"),
                    entry.get("steps"),
                    final,
                    golden_final,
                    ratio,
                    frozen,
                ),
            )
        )
    tables = [
        "<details open><summary>training per variant</summary>"
        + _table(
            (
                "variant",
                "loss",
                "optimizer",
                "lr",
                "steps",
                "final loss",
                "golden",
                "loss / base (last step)",
                "no gradient",
            ),
            body,
        )
        + "</details>"
    ]
    ratios = [
        (False, (variant, parameter, *(entry.get(k, {}).get(parameter) for k in _RATIOS)))
        for variant, entry in entries.items()
        for parameter in dict.fromkeys(p for k in _RATIOS for p in entry.get(k) or {})
    ]
    if ratios:
        tables.append(
            "<details><summary>gradient and update norms over the base's (the parameters "
            f"farthest from 1, at most {training.KEPT_PARAMETERS} per variant)</summary>"
            + _table(("variant", "parameter", "gradient norm ratio", "update norm ratio"), ratios)
            + "</details>"
        )
    return lines, figures, tables


_RATIOS = ("gradient_norm_ratio", "update_norm_ratio")


# -- page -----------------------------------------------------------------------------------


def _table(header: Sequence[str], body: Sequence[tuple[bool, Sequence[Any]]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = []
    for bad, cells in body:
        tds = "".join(
            f'<td class="num">{escape(value_text(c))}</td>'
            if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{escape(value_text(c))}</td>"
            for c in cells
        )
        rows.append(f'<tr class="bad">{tds}</tr>' if bad else f"<tr>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _worst(record: Mapping[str, Any]) -> str:
    worst = number(record["worst"])
    return "" if worst is None else f"{worst:.3g}"


def _check_section(index: int, record: Mapping[str, Any]) -> str:
    status = record["status"]
    color = _STATUS_COLORS.get(status, BAD_COLOR)
    worst = number(record["worst"])
    parts = [
        f'<section class="check" id="check-{index}">',
        f'<h2><span class="badge" style="background:{color}">{escape(status)}</span>'
        f"<code>{escape(label(record))}</code></h2>",
        f'<div class="meta">golden: <code>{escape(record["golden_path"])}</code>'
        + (f"; largest drift {worst:.3g} of its tolerance" if worst is not None else "")
        + (f"; {record['moved']} of {record['compared']} values moved" if record["moved"] else "")
        + "</div>",
    ]
    parts += [f'<div class="cause">likely cause: {escape(c)}</div>' for c in record["causes"]]
    changes = record["environment"]["changes"]
    if changes:
        parts.append(
            f'<div class="meta">environment (golden → now): {escape(", ".join(changes))}</div>'
        )
    layer_lines, layer_figures = _layer_parts(record)
    parts += layer_lines
    training_lines, figures, training_tables = _training_parts(record)
    parts += training_lines
    current = record["distributions"]["current"]
    recorded = record["distributions"]["golden"]
    outputs = list(dict.fromkeys(o for v in (*current.values(), *recorded.values()) for o in v))
    for output in outputs:
        svg = quantile_plot(output, current, recorded, record["base"])
        if svg:
            caption = f"output <b>{escape(output)}</b>: value quantiles per variant"
            if recorded:
                caption += " (dashed: golden)"
            figures.append(f"<figure>{svg}<figcaption>{caption}</figcaption></figure>")
    figures += layer_figures
    drift = drift_chart(record["statistics"])
    if drift:
        figures.append(
            f"<figure>{drift}<figcaption>drift of each statistic / its tolerance "
            "(golden vs this run)</figcaption></figure>"
        )
    if figures:
        figs = f'<div class="figs">{"".join(figures)}</div>'
        if status in _GOOD:  # failing checks open, the others a click away
            figs = f"<details><summary>pictures</summary>{figs}</details>"
        parts.append(figs)
    parts += training_tables
    if record["message"] and status != "passed":
        parts.append(
            f"<details><summary>failure message</summary><pre>{escape(record['message'])}"
            "</pre></details>"
        )
    stats, omitted = kept_rows(record, TABLE_ROWS)
    if stats:
        body = [
            (
                not s["ok"],
                (
                    s["variant"],
                    s["where"],
                    s["stat"],
                    s["golden"],
                    s["current"],
                    s["difference"],
                    "exact" if s["allowed"] is None else s["allowed"],
                ),
            )
            for s in stats
        ]
        left_out = (
            f'<div class="meta">{omitted} more values held within tolerance (not listed; '
            "the JSON report has the largest drift per statistic)</div>"
            if omitted
            else ""
        )
        parts.append(
            "<details><summary>the compared values</summary>"
            + left_out
            + _table(
                ("variant", "where", "statistic", "golden", "current", "difference", "allowed"),
                body,
            )
            + "</details>"
        )
    divergence = [
        (False, (variant, output, key, value))
        for variant, div in record["divergence"].items()
        for output, values in div.get("outputs", {}).items()
        for key, value in values.items()
    ]
    if divergence:
        parts.append(
            "<details><summary>divergence from the base</summary>"
            + _table(("variant", "output", "measure", "value"), divergence)
            + "</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def to_html(records: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> str:
    """One self-contained page: summary, an index, then every check, failing ones first."""
    ranked = ordered(records)
    tally = ", ".join(f"{n} {s}" for s, n in counts(records).items()) or "no checks"
    env: Mapping[str, Any] = next(
        (r["environment"]["run"] for r in ranked if r["environment"]["run"]), {}
    )
    versions = ", ".join(
        f"{k} {env[k]}" for k in ("python", "numpy", "torch", "tensorflow", "keras") if env.get(k)
    )
    index = "".join(
        f"<tr{' class=bad' if r['status'] not in _GOOD else ''}><td>{escape(r['status'])}</td>"
        f'<td><a href="#check-{i}"><code>{escape(label(r))}</code></a></td>'
        f'<td class="num">{_worst(r)}</td></tr>'
        for i, r in enumerate(ranked)
    )
    index = (
        "<table><tr><th>status</th><th>check</th><th>largest drift / tolerance</th></tr>"
        f"{index}</table>"
    )
    orphans = list((extra or {}).get("orphans", []))
    orphan_html = (
        f"<p class=meta>{len(orphans)} unused golden file(s) of deleted test files: "
        + ", ".join(f"<code>{escape(p)}</code>" for p in orphans)
        + "</p>"
        if orphans
        else ""
    )
    sections = "".join(_check_section(i, r) for i, r in enumerate(ranked))
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        "<title>weightshape report</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>weightshape report</h1><div class=meta>{len(records)} "
        f"check{'s' if len(records) != 1 else ''}: "
        f"{escape(tally)}</div><div class=meta>{escape(versions)}; device "
        f"{escape(str(env.get('device', '')))}</div>{orphan_html}{index}{sections}"
        "</body></html>\n"
    )


def _log_chart(
    name_w: int, bar_w: int, top: int, rows_h: int, log_max: float, what: str
) -> tuple[Callable[[float], float], list[str], int]:
    """A drift chart's frame: the x position of a drift ratio on the log axis, the opening of
    the SVG with its grid (one line per decade, labelled), and the chart's height."""
    height = top + rows_h + 26
    width = name_w + bar_w + 70

    def x(r: float) -> float:
        if r <= 0:
            return name_w
        level = min(max(math.log10(r), LOG_MIN), log_max)
        return name_w + bar_w * (level - LOG_MIN) / (log_max - LOG_MIN)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="drift of {what} relative to its tolerance">'
    ]
    for k in range(int(LOG_MIN), int(log_max) + 1):
        gx = x(10.0**k)
        parts.append(
            f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{top - 4}" y2="{height - 22}" '
            'stroke="#eee"/>'
            f'<text x="{gx:.1f}" y="{height - 8}" font-size="10" text-anchor="middle">'
            f"1e{k}</text>"
        )
    return x, parts, height
