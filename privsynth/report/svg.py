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


def bars(labels: list[str], series: dict[str, list[float]], width: int = 520, percent: bool = True) -> str:
    """Grouped horizontal bars, one group per label, one bar per series."""
    row = 8 * len(series) + 8
    left, top = 170, 22
    height = top + row * len(labels) + 10
    top_value = max([v for vs in series.values() for v in vs] + [1e-9])
    scale = (width - left - 120) / top_value
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for k, name in enumerate(series):
        parts.append(f'<rect x="{left + 90 * k}" y="4" width="10" height="10" fill="{_colour(name, k)}"/>'
                     f'<text x="{left + 90 * k + 14}" y="13" font-size="11">{escape(name)}</text>')
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


def heatmap(matrix: list[list[float]], row_labels: list[str], col_labels: list[str], vmax: float = 1.0,
            cell: int | None = None, title: str = "") -> str:
    """A heatmap; NaN cells (suppressed) are drawn grey."""
    cell = cell or (22 if len(col_labels) <= 12 else 14)
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
                shade = int(255 - 200 * min(1.0, abs(v) / vmax if vmax else 0))
                fill, tip = f"rgb({shade},{shade},255)", f"{v:.3f}"
            parts.append(f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="{fill}"><title>{escape(tip)}</title></rect>')
    # the colour scale: 0 (white) to vmax (blue), and grey for suppressed cells
    x0 = left + cell * len(col_labels) + 16
    for k in range(10):
        shade = int(255 - 200 * (9 - k) / 9)
        parts.append(f'<rect x="{x0}" y="{top + 12 * k}" width="14" height="12" fill="rgb({shade},{shade},255)"/>')
    parts.append(f'<text x="{x0 + 18}" y="{top + 9}" font-size="9">{vmax:.2g}</text>'
                 f'<text x="{x0 + 18}" y="{top + 118}" font-size="9">0</text>'
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
