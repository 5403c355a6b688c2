"""What an audit shows in the release report: a section made of a few typed blocks.

An audit describes its section in this small vocabulary; the report (a higher layer,
:mod:`privsynth.report.html`) draws it. Nothing here is HTML: text is plain (the report
escapes it), emphasis is a :class:`Strong` run, a table row is flagged rather than given a
CSS class. An audit never imports the report.

>>> Section("toy", "Toy", (Text(("One ", Strong("bold"), " word.")),)).blocks[0].parts[1]
Strong(text='bold')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportInfo:
    """What a section may need from outside its audit's figures: the manifest's (epsilon,
    delta), the real (kept) columns of a partial synthesis, and the smallest cell the report
    shows (real counts below it are suppressed)."""

    epsilon: float
    delta: float
    real_columns: tuple[str, ...] = ()
    min_cell: int = 10

    @property
    def partial(self) -> bool:
        return bool(self.real_columns)


@dataclass(frozen=True)
class Strong:
    """Emphasised words inside a :class:`Text`."""

    text: str


@dataclass(frozen=True)
class Text:
    """A paragraph: plain text runs and :class:`Strong` runs, in order."""

    parts: tuple[str | Strong, ...]


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells under a header row; ``flagged[k]`` highlights row k
    (empty: no row is)."""

    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    flagged: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Bars:
    """Grouped horizontal bars under a title: one group per label, one bar per series
    (``(name, values)``, a share per label)."""

    title: str
    labels: tuple[str, ...]
    series: tuple[tuple[str, tuple[float, ...]], ...]
    label_axis: str = ""  # what the labels are (drawn as the axis title)
    value_axis: str = ""  # what the bars measure


@dataclass(frozen=True)
class Roc:
    """ROC curves (``(name, fpr, tpr)``) on log axes with the chance line and, when
    ``epsilon`` is not None, the DP envelope TPR = e^epsilon * FPR + delta."""

    curves: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...]
    epsilon: float | None
    delta: float


@dataclass(frozen=True)
class Grid:
    """Blocks side by side, wrapping (e.g. several small charts)."""

    blocks: tuple[Block, ...]


Block = Text | Table | Bars | Roc | Grid
BLOCKS: tuple[type, ...] = (Text, Table, Bars, Roc, Grid)


@dataclass(frozen=True)
class Section:
    """One section of the report: ``key`` is its anchor (unique in the page), ``title`` its
    heading and navigation entry."""

    key: str
    title: str
    blocks: tuple[Block, ...]

    def walk(self) -> list[Block]:
        """Every block, those inside a :class:`Grid` included (depth first)."""
        out: list[Block] = []
        stack = list(reversed(self.blocks))
        while stack:
            block = stack.pop()
            out.append(block)
            if isinstance(block, Grid):
                stack.extend(reversed(block.blocks))
        return out
