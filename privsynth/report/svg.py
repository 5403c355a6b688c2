"""Small inline SVG charts: no plotting library, no script, nothing fetched at view time.

>>> "<svg" in bars(["a", "b"], {"real": [0.5, 0.5], "synthetic": [0.4, 0.6]})
True
"""

from __future__ import annotations

import math
from html import escape

COLOURS = {"real": "#4C72B0", "synthetic": "#DD8452", "train": "#C44E52", "holdout": "#55A868"}
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]


def _colour(name: str, k: int) -> str:
    return COLOURS.get(name, PALETTE[k % len(PALETTE)])


def bars(labels: list[str], series: dict[str, list[float]], width: int = 520, percent: bool = True,
         label_axis: str = "", value_axis: str = "") -> str:
    """Grouped horizontal bars, one group per label, one bar per series; ``label_axis`` titles
    the labels (left), ``value_axis`` the bars' lengths (below)."""
    row = 8 * len(series) + 8
    left, top = 170, 22 + (14 if label_axis else 0)
    height = top + row * len(labels) + 10 + (18 if value_axis else 0)
    top_value = max([v for vs in series.values() for v in vs] + [1e-9])
    scale = (width - left - 120) / top_value
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for k, name in enumerate(series):
        parts.append(f'<rect x="{left + 90 * k}" y="4" width="10" height="10" fill="{_colour(name, k)}"/>'
                     f'<text x="{left + 90 * k + 14}" y="13" font-size="11">{escape(name)}</text>')
    if label_axis:
        parts.append(f'<text x="{left - 6}" y="{top - 4}" font-size="11" font-weight="bold" text-anchor="end">'
                     f'{escape(label_axis)}</text>')
    if value_axis:
        parts.append(f'<text x="{left}" y="{height - 4}" font-size="11" font-weight="bold">{escape(value_axis)} '
                     '&#8594;</text>')
    for i, label in enumerate(labels):
        y = top + i * row
        parts.append(f'<text x="{left - 6}" y="{y + row / 2 + 3}" font-size="11" text-anchor="end">'
                     f'{escape(label[:28])}</text>')
        for k, (name, values) in enumerate(series.items()):
            v = values[i]
            text = f"{100 * v:.1f}%" if percent else f"{v:.3g}"
            parts.append(f'<rect x="{left}" y="{y + 8 * k + 2}" width="{max(0.5, v * scale):.1f}" height="7" '
                         f'fill="{_colour(name, k)}"><title>{escape(name)} {text}</title></rect>')
        total = max(values[i] for values in series.values())
        parts.append(f'<text x="{left + total * scale + 4:.1f}" y="{y + row / 2 + 3}" font-size="10" fill="#555">'
                     + " / ".join(f"{100 * vs[i]:.1f}%" if percent else f"{vs[i]:.3g}" for vs in series.values())
                     + "</text>")
    parts.append("</svg>")
    return "".join(parts)


def _fill(v: float, vmax: float, signed: bool) -> str:
    """White at 0 to blue at vmax; signed maps go red below 0 (real above synthetic: blue)."""
    share = min(1.0, abs(v) / vmax if vmax else 0)
    shade = int(255 - 200 * share)
    if signed and v < 0:
        return f"rgb(255,{shade},{shade})"
    return f"rgb({shade},{shade},255)"


def heatmap(matrix: list[list[float]], row_labels: list[str], col_labels: list[str], vmax: float = 1.0,
            cell: int | None = None, title: str = "", signed: bool = False) -> str:
    """A heatmap with each cell's value written in it (when the cells are wide enough); NaN
    cells (suppressed) are drawn grey. ``signed``: a difference map, blue above 0, red below."""
    cell = cell or (30 if len(col_labels) <= 12 else 14)
    longest = max((len(x) for x in [*row_labels, *col_labels]), default=4)
    left, top = 12 + 6 * min(longest, 40), 20 + int(5.5 * min(longest, 40))
    width = max(left + cell * len(col_labels) + 90, 8 * len(title) + 10)
    height = max(top + cell * len(row_labels) + 10, top + 140)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="4" y="14" font-size="12" font-weight="bold">{escape(title)}</text>']
    for j, label in enumerate(col_labels):
        x = left + j * cell + cell / 2
        parts.append(f'<text transform="translate({x + 3},{top - 4}) rotate(-60)" font-size="9">'
                     f'{escape(label[:40])}</text>')
    for i, label in enumerate(row_labels):
        y = top + i * cell
        parts.append(f'<text x="{left - 4}" y="{y + cell - 3}" font-size="9" text-anchor="end">'
                     f'{escape(label[:40])}</text>')
        for j in range(len(col_labels)):
            v = matrix[i][j]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                fill, tip = "#ddd", "suppressed"
            else:
                fill, tip = _fill(v, vmax, signed), f"{v:.3f}"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="{fill}"><title>{escape(tip)}</title></rect>')
            if cell >= 24 and tip != "suppressed":
                shown = f"{v:+.2f}" if signed else f"{v:.2f}"
                parts.append(f'<text x="{left + j * cell + cell / 2 - 0.5}" y="{y + cell / 2 + 3}" font-size="8" '
                             f'text-anchor="middle">{shown.replace("0.", ".", 1)}</text>')
    # the colour scale: 0 (white) to vmax (blue; signed: -vmax red), and grey for suppressed cells
    x0 = left + cell * len(col_labels) + 16
    low = -vmax if signed else 0.0
    for k in range(10):
        value = vmax - (vmax - low) * k / 9
        parts.append(f'<rect x="{x0}" y="{top + 12 * k}" width="14" height="12" fill="{_fill(value, vmax, signed)}"/>')
    parts.append(f'<text x="{x0 + 18}" y="{top + 9}" font-size="9">{vmax:+.2g}</text>' if signed else
                 f'<text x="{x0 + 18}" y="{top + 9}" font-size="9">{vmax:.2g}</text>')
    parts.append(f'<text x="{x0 + 18}" y="{top + 118}" font-size="9">{low:.2g}</text>'
                 f'<rect x="{x0}" y="{top + 126}" width="14" height="10" fill="#ddd"/>'
                 f'<text x="{x0 + 18}" y="{top + 135}" font-size="9">suppressed</text>')
    parts.append("</svg>")
    return "".join(parts)


def roc(curves: dict[str, tuple[list[float], list[float]]], epsilon: float | None, delta: float,
        size: int = 360) -> str:
    """ROC curves on log-log axes (FPR and TPR from 1e-3 to 1), with the chance line and,
    when a guarantee is claimed, the DP envelope TPR = e^epsilon * FPR + delta."""
    low = 1e-3
    pad = 40

    def px(v: float) -> float:
        return pad + (math.log10(max(v, low)) - math.log10(low)) / -math.log10(low) * (size - 2 * pad)

    def py(v: float) -> float:
        return size - px(v)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 140}" height="{size}" role="img">',
             f'<rect x="{pad}" y="{pad}" width="{size - 2 * pad}" height="{size - 2 * pad}" fill="none" '
             'stroke="#999"/>']
    for tick in (1e-3, 1e-2, 1e-1, 1.0):
        parts.append(f'<text x="{px(tick)}" y="{size - pad + 14}" font-size="10" text-anchor="middle">{tick:g}</text>'
                     f'<text x="{pad - 4}" y="{py(tick) + 3}" font-size="10" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{size / 2}" y="{size - 6}" font-size="11" text-anchor="middle">false positive rate</text>'
                 f'<text x="10" y="{size / 2}" font-size="11" transform="rotate(-90 10 {size / 2})" '
                 'text-anchor="middle">true positive rate</text>')
    grid = [low * (1 / low) ** (k / 60) for k in range(61)]
    parts.append('<polyline fill="none" stroke="#bbb" stroke-dasharray="4 3" points="'
                 + " ".join(f"{px(f):.1f},{py(f):.1f}" for f in grid) + '"><title>chance</title></polyline>')
    legend = [("chance", "#bbb")]
    if epsilon is not None:
        parts.append('<polyline fill="none" stroke="#000" stroke-width="1.5" points="'
                     + " ".join(f"{px(f):.1f},{py(min(1.0, math.exp(epsilon) * f + delta)):.1f}" for f in grid)
                     + f'"><title>DP envelope at epsilon {epsilon:g}</title></polyline>')
        legend.append((f"DP bound, epsilon {epsilon:g}", "#000"))
    for k, (name, (fpr, tpr)) in enumerate(curves.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = [(f, t) for f, t in zip(fpr, tpr) if f > 0 or t > 0]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                     + " ".join(f"{px(f):.1f},{py(max(t, low)):.1f}" for f, t in points) + '"/>')
        legend.append((name, colour))
    for k, (name, colour) in enumerate(legend):
        y = pad + 14 * k
        parts.append(f'<line x1="{size - pad + 8}" y1="{y}" x2="{size - pad + 24}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/><text x="{size - pad + 28}" y="{y + 4}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
