"""Charts as inline SVG, drawn on the server: no script, no library, nothing from the internet. A chart is
one or two lines over time (gateway/ops/history.py series) with its scale and the range's ends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from markupsafe import Markup, escape

from gateway.ops.history import Series

WIDTH: Final = 400
HEIGHT: Final = 110
PAD_LEFT: Final = 34
PAD_BOTTOM: Final = 14
#: Line colours, in order: the first series, the second.
COLOURS: Final = ("#1f5fbf", "#c62828", "#b7791f")


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}"


def line_chart(series: Sequence[Series], unit: str = "", zone_label: str = "") -> Markup:
    """One SVG with a polyline per series (gaps where nothing was recorded), y from zero to the peak."""
    if not series or not series[0].values:
        return Markup('<p class="muted">No data.</p>')
    buckets = len(series[0].values)
    peak = max((s.peak or 0.0) for s in series) or 1.0
    plot_w, plot_h = WIDTH - PAD_LEFT - 4, HEIGHT - PAD_BOTTOM - 6

    def x(i: int) -> float:
        return PAD_LEFT + plot_w * (i + 0.5) / buckets

    def y(v: float) -> float:
        return 6 + plot_h * (1 - v / peak)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'font-size="9" font-family="system-ui, sans-serif">',
        f'<line x1="{PAD_LEFT}" y1="{6 + plot_h}" x2="{WIDTH - 4}" y2="{6 + plot_h}" stroke="#d8dde6"/>',
        f'<line x1="{PAD_LEFT}" y1="6" x2="{WIDTH - 4}" y2="6" stroke="#eef1f5"/>',
        f'<text x="{PAD_LEFT - 3}" y="10" text-anchor="end" fill="#667085">{escape(_fmt(peak))}</text>',
        f'<text x="{PAD_LEFT - 3}" y="{6 + plot_h}" text-anchor="end" fill="#667085">0</text>',
    ]
    for n, s in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.6" fill="{colour}"/>')
            elif run:
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.4" points="{" ".join(run)}"/>'
                )
    start = series[0].start
    end = start + timedelta(seconds=series[0].step_seconds * buckets)
    fmt = "%d/%m %H:%M" if (end - start) > timedelta(days=1) else "%H:%M"
    parts.append(
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 2}" fill="#667085">{escape(start.strftime(fmt))} UTC</text>'
    )
    parts.append(
        f'<text x="{WIDTH - 4}" y="{HEIGHT - 2}" text-anchor="end" fill="#667085">'
        f"{escape(end.strftime(fmt))} UTC</text>"
    )
    titles = ", ".join(f"{s.name}: last {_fmt(s.last) if s.last is not None else '–'}" for s in series)
    parts.append(f"<title>{escape(titles)}{escape(' ' + unit if unit else '')}</title></svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped, the rest are numbers


def legend(series: Sequence[Series]) -> Markup:
    items = []
    for n, s in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        last = "–" if s.last is None else _fmt(s.last)
        peak = "–" if s.peak is None else _fmt(s.peak)
        items.append(
            Markup(
                '<span><svg width="14" height="6" aria-hidden="true"><rect width="14" height="3" y="1" '
                'fill="{}"/></svg> {} · last {} · peak {}</span>'
            ).format(colour, s.name, last, peak)
        )
    return Markup(" ").join(items)
