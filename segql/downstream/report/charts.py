"""The report's charts, drawn as inline SVG so the page works offline and from a file.

Each chart returns ``markupsafe.Markup``; every text that comes from data (segment names,
reasons, dates) is escaped inside, so the page template can place a chart as it is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from markupsafe import Markup

from segql.downstream.report.formatting import compact, escape, when
from segql.downstream.report.queries import REASONS, ReportData, RunPoint, SegmentFigures

_CHART_WIDTH = 600
_LEFT, _RIGHT, _PAD = 52, 14, 18
_ENTER_COLOR, _EXIT_COLOR, _LINE_COLOR = "#0d9488", "#e11d48", "#4f46e5"
_REASON_COLORS = {
    "rules": "#e11d48",
    "definition_changed": "#f59e0b",
    "segment_deleted": "#64748b",
}


def _nice_ticks(maximum: float, count: int = 4) -> list[int]:
    """Round tick values from 0 to at least ``maximum``."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, round(step))
    top = math.ceil(maximum / step) * step
    return list(range(0, top + 1, step))


class _TimeScale:
    """Maps the as-of times of the runs shown onto the chart's width."""

    def __init__(self, times: Sequence[datetime]):
        self.start, self.end = min(times), max(times)
        self.times = sorted(set(times))
        self.x0, self.x1 = _LEFT + _PAD, _CHART_WIDTH - _RIGHT - _PAD

    def x(self, when: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        if span == 0:
            return (self.x0 + self.x1) / 2
        return self.x0 + (self.x1 - self.x0) * (when - self.start).total_seconds() / span

    def bar_width(self) -> float:
        xs = [self.x(t) for t in self.times]
        gap = min((b - a for a, b in itertools.pairwise(xs)), default=60.0)
        return max(2.0, min(28.0, gap * 0.6))

    def labels(self, baseline: float) -> str:
        """Date labels under the runs, dropping those that would overlap."""
        span = self.end - self.start
        with_time = span < timedelta(days=3) and any(
            t.hour or t.minute for t in self.times
        )  # fmt: skip
        kept: list[datetime] = []
        for moment in self.times:
            if kept and self.x(moment) - self.x(kept[-1]) < 74:
                if moment == self.times[-1]:
                    kept[-1] = moment  # the latest run always has its label
                continue
            kept.append(moment)
        parts = []
        for moment in kept:
            text = f"{moment:%b} {moment.day}" + (f" {moment:%H:%M}" if with_time else "")
            parts.append(
                f'<text x="{self.x(moment):.1f}" y="{baseline + 16:.1f}" class="axis" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        return "".join(parts)


def _in_period(point: RunPoint, data: ReportData) -> bool:
    return data.since is None or point.as_of > data.since


def size_chart(figure: SegmentFigures, data: ReportData) -> Markup:
    height, top, bottom = 170, 12, 26
    points = figure.points
    scale = _TimeScale([p.as_of for p in points])
    ticks = _nice_ticks(max(p.size for p in points))
    y_max = ticks[-1]
    inner = height - top - bottom

    def y(value: float) -> float:
        return top + inner - inner * value / y_max

    grid = "".join(
        f'<line x1="{_LEFT}" x2="{_CHART_WIDTH - _RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
        f'class="gridline"/><text x="{_LEFT - 8}" y="{y(t) + 4:.1f}" class="axis" '
        f'text-anchor="end">{compact(t)}</text>'
        for t in ticks
    )
    xy = [(scale.x(p.as_of), y(p.size)) for p in points]
    line = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in xy)
    area = (
        f'<polygon points="{xy[0][0]:.1f},{y(0):.1f} {line} {xy[-1][0]:.1f},{y(0):.1f}" '
        f'fill="{_LINE_COLOR}" fill-opacity="0.08"/>'
        if len(xy) > 1
        else ""
    )
    dots = []
    for point, (x, yy) in zip(points, xy, strict=True):
        start = not _in_period(point, data)
        note = " (start of the period)" if start else (
            f" (+{point.entered:,} / \u2212{point.exited:,})"
        )  # fmt: skip
        dots.append(
            f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="{3.5 if start else 3}" '
            f'class="{"dot start" if start else "dot"}" data-role="size-point" '
            f'data-seq="{point.commit_seq}" data-value="{point.size}">'
            f"<title>{escape(when(point.as_of))}: {point.size:,} members{escape(note)}"
            "</title></circle>"
        )
    return Markup(
        f'<svg data-role="size-chart" viewBox="0 0 {_CHART_WIDTH} {height}" role="img" '
        f'aria-label="Size of {escape(figure.name)} after each run">{grid}{area}'
        f'<polyline points="{line}" fill="none" stroke="{_LINE_COLOR}" stroke-width="2" '
        f'stroke-linejoin="round"/>{"".join(dots)}{scale.labels(top + inner)}</svg>'
    )


def moves_chart(figure: SegmentFigures, data: ReportData) -> Markup:
    # Room above and below the bars for their value labels, then the date labels.
    height, top, bottom, room = 150, 16, 26, 14
    inner = height - top - bottom - room
    scale = _TimeScale([p.as_of for p in figure.points])
    shown = [p for p in figure.points if _in_period(p, data)]
    up = max((p.entered for p in shown), default=0)
    down = max((p.exited for p in shown), default=0)
    if up + down == 0:
        zero = top + inner / 2
        up_px = down_px = inner / 2
    else:
        # Keep both directions visible even when one dwarfs the other.
        up_share = 0.5 if not (up and down) else min(0.8, max(0.2, up / (up + down)))
        if not down:
            up_share = 1.0
        if not up:
            up_share = 0.0
        up_px, down_px = inner * up_share, inner * (1 - up_share)
        zero = top + up_px
    width = scale.bar_width()
    parts = [
        f'<line x1="{_LEFT}" x2="{_CHART_WIDTH - _RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" '
        f'class="zeroline"/><text x="{_LEFT - 8}" y="{zero + 4:.1f}" class="axis" '
        f'text-anchor="end">0</text>'
    ]
    if up:
        parts.append(
            f'<text x="{_LEFT - 8}" y="{top + 4:.1f}" class="axis" text-anchor="end">'
            f"+{compact(up)}</text>"
        )
    if down:
        parts.append(
            f'<text x="{_LEFT - 8}" y="{top + inner + 4:.1f}" class="axis" '
            f'text-anchor="end">&minus;{compact(down)}</text>'
        )
    label_values = len(shown) <= 12
    for point in shown:
        x = scale.x(point.as_of) - width / 2
        for role, value, color in (
            ("entered", point.entered, _ENTER_COLOR),
            ("exited", point.exited, _EXIT_COLOR),
        ):
            extent = up_px * value / up if role == "entered" and up else 0.0
            if role == "exited" and down:
                extent = down_px * value / down
            y = zero - extent if role == "entered" else zero
            sign = "+" if role == "entered" else "\u2212"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                f'height="{max(extent, 0.0):.1f}" fill="{color}" rx="1.5" data-role="{role}" '
                f'data-seq="{point.commit_seq}" data-value="{value}">'
                f"<title>{escape(when(point.as_of))}: {sign}{value:,} {role}</title></rect>"
            )
            if label_values and value:
                ty = y - 4 if role == "entered" else zero + extent + 11
                parts.append(
                    f'<text x="{x + width / 2:.1f}" y="{ty:.1f}" class="value" '
                    f'text-anchor="middle">{sign}{compact(value)}</text>'
                )
    if not shown or up + down == 0:
        parts.append(
            f'<text x="{(_LEFT + _CHART_WIDTH) / 2:.1f}" y="{zero - 8:.1f}" class="axis" '
            f'text-anchor="middle">no changes in this period</text>'
        )
    parts.append(scale.labels(top + inner + room))
    return Markup(
        f'<svg data-role="moves-chart" viewBox="0 0 {_CHART_WIDTH} {height}" role="img" '
        f'aria-label="People who entered and exited {escape(figure.name)} at each run">'
        f"{''.join(parts)}</svg>"
    )


def exit_reasons(figure: SegmentFigures) -> Markup:
    total = sum(figure.exit_reasons.values())
    if total == 0:
        return Markup('<p class="note">No exits in this period.</p>')
    ordered = sorted(
        figure.exit_reasons.items(),
        key=lambda item: (REASONS.index(item[0]) if item[0] in REASONS else 99, item[0]),
    )
    x, rects, legend = 0.0, [], []
    for reason, count in ordered:
        width = _CHART_WIDTH * count / total
        color = _REASON_COLORS.get(reason, "#94a3b8")
        share = f"{100 * count / total:.0f}%"
        rects.append(
            f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="14" fill="{color}" '
            f'data-role="reason" data-reason="{escape(reason)}" data-value="{count}">'
            f"<title>{escape(reason.replace('_', ' '))}: {count:,} ({share})</title></rect>"
        )
        legend.append(
            f'<span class="key"><i style="background:{color}"></i>'
            f"{escape(reason.replace('_', ' '))}"
            f' <b>{count:,}</b> <span class="muted">{share}</span></span>'
        )
        x += width
    return Markup(
        f'<svg data-role="exit-reasons" class="reasons" viewBox="0 0 {_CHART_WIDTH} 14" '
        f'preserveAspectRatio="none" role="img" aria-label="Reasons for exits">'
        f'{"".join(rects)}</svg><div class="legend">{"".join(legend)}</div>'
    )


def sparkline(figure: SegmentFigures) -> Markup:
    points = figure.points
    if not points:
        return Markup('<span class="muted">&ndash;</span>')
    width, height = 120, 26
    top = max(p.size for p in points) or 1
    first, last = points[0].as_of, points[-1].as_of
    span = (last - first).total_seconds() or 1.0

    def x(when: datetime) -> float:
        return 2 + (width - 4) * ((when - first).total_seconds() / span if len(points) > 1 else 0.5)

    coords = [(x(p.as_of), height - 3 - (height - 6) * p.size / top) for p in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    end = coords[-1]
    return Markup(
        f'<svg data-role="sparkline" class="spark" viewBox="0 0 {width} {height}" '
        f'aria-hidden="true"><polyline points="{line}" fill="none" stroke="{_LINE_COLOR}" '
        f'stroke-width="1.5"/><circle cx="{end[0]:.1f}" cy="{end[1]:.1f}" r="2" '
        f'fill="{_LINE_COLOR}"/></svg>'
    )


def _mix(low: str, high: str, share: float) -> str:
    a = [int(low[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(high[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def _heat_color(share: float) -> str:
    """0 to 1 on a light-to-indigo scale."""
    if share <= 0.5:
        return _mix("#f1f5f9", "#818cf8", share * 2)
    return _mix("#818cf8", "#312e81", (share - 0.5) * 2)


def heatmap(data: ReportData) -> Markup:
    names = data.overlap_names
    count = len(names)
    label = min(190, 16 + 7 * max(len(n) for n in names))
    cell = max(20.0, min(64.0, (1240 - label) / count))
    head = min(150, 10 + 5.2 * max(len(n) for n in names))
    width, height = label + cell * count + 8, head + cell * count + 4
    size = {n: data.overlap.get((n, n), 0) for n in names}
    parts = []
    for i, name in enumerate(names):
        short = name if len(name) <= 26 else name[:25] + "\u2026"
        y = head + cell * i
        parts.append(
            f'<text x="{label - 8}" y="{y + cell / 2 + 4:.1f}" class="axis row" '
            f'text-anchor="end">{escape(short)}<title>{escape(name)}</title></text>'
        )
        x = label + cell * i + cell / 2
        parts.append(
            f'<text transform="translate({x:.1f},{head - 8}) rotate(-40)" class="axis" '
            f'text-anchor="start">{escape(short)}<title>{escape(name)}</title></text>'
        )
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            both = data.overlap.get((a, b), 0)
            x, y = label + cell * j, head + cell * i
            if a == b:
                fill, share = "#e2e8f0", 1.0
                tip = f"{a}: {both:,} members"
                text = compact(both)
            else:
                share = both / size[a] if size[a] else 0.0
                share_b = both / size[b] if size[b] else 0.0
                fill = _heat_color(share)
                tip = (
                    f"{a} and {b}: {both:,} people in both, {100 * share:.1f}% of {a}, "
                    f"{100 * share_b:.1f}% of {b}"
                )
                text = "" if not both else f"{100 * share:.0f}%" if share >= 0.005 else "&lt;1%"
            ink = "#ffffff" if a != b and share > 0.55 else "#0f172a"
            parts.append(
                f'<g data-role="overlap-cell" data-a="{escape(a)}" data-b="{escape(b)}" '
                f'data-count="{both}"><rect x="{x + 1:.1f}" y="{y + 1:.1f}" '
                f'width="{cell - 2:.1f}" height="{cell - 2:.1f}" rx="3" fill="{fill}"/>'
            )
            if cell >= 28:
                parts.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" fill="{ink}" '
                    f'class="cell" text-anchor="middle">{text}</text>'
                )
            parts.append(f"<title>{escape(tip)}</title></g>")
    return Markup(
        f'<svg data-role="overlap-heatmap" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
        f'aria-label="Overlap between segments">{"".join(parts)}</svg>'
    )


def heat_gradient() -> str:
    """The CSS gradient of the heatmap's colour scale, for its legend."""
    return f"linear-gradient(90deg,{_heat_color(0)},{_heat_color(0.5)},{_heat_color(1)})"
