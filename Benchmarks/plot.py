"""An SVG chart of Benchmarks/run's results: per scenario, swift's ratio to cnats and to python,
defined so that more than 1x always means swift is better, on a log-scale axis.

    import plot
    plot.write_svg(results, "bench.svg", "swift-message-store vs ... - 2026-12-04, 2 vCPUs")

results is the list of dicts that Benchmarks/run --json writes. Only the standard library: the
SVG is written by hand, and the same results give the same bytes.
"""

import math
from xml.sax.saxutils import escape

OTHERS = (("cnats", "vs cnats", "#3b75af"), ("python", "vs python", "#e1812c"))

WIDTH = 900
RIGHT = 36
TOP_PAD = 24
BAR = 17
BAR_GAP = 3
GROUP_PAD = 9
FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"

# Axis limits and gridlines come from this ladder (each value is a gridline when in range).
LADDER = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def text_width(text, size):
    """A generous estimate of the width of text in DejaVu Sans (the widest usual sans font)."""
    return len(text) * size * 0.62


def format_ratio(value):
    if value >= 100:
        return f"{value:,.0f}\u00d7"
    if value >= 10:
        return f"{value:.1f}\u00d7"
    if value >= 0.01:
        return f"{value:.2f}\u00d7"
    return f"{value:.2g}\u00d7"


def format_tick(value):
    return f"{value:g}\u00d7"


def number(result, key):
    value = result.get(key) if result else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def quotient(numerator, denominator):
    if numerator is None or denominator is None or numerator <= 0 or denominator <= 0:
        return None
    value = numerator / denominator
    return value if math.isfinite(value) and value > 0 else None


def more_is_better(key):
    return lambda swift, other: quotient(number(swift, key), number(other, key))


def less_is_better(key):
    return lambda swift, other: quotient(number(other, key), number(swift, key))


def measures(name, swift):
    """The rows of one scenario: (label, sublabel, ratio function of (swift, other))."""
    if name == "latency":
        return [
            ("latency p50", "p50 ms, less is better", less_is_better("p50_ms")),
            ("latency p99", "p99 ms, less is better", less_is_better("p99_ms")),
        ]
    if name == "memory":
        return [("memory peak (less is better)", "peak RSS", less_is_better("rss_bytes"))]
    if name.startswith("cold_start"):
        return [(name, "seconds to first message, less is better", less_is_better("seconds"))]
    if name.startswith("poison"):
        return [(name, "seconds, less is better", less_is_better("seconds"))]
    if "mb_per_second" in swift:
        return [(name, "bytes per second", more_is_better("mb_per_second"))]
    return [(name, "msg/s", more_is_better("per_second"))]


def rows_of(results):
    """[(label, sublabel, [(impl, legend, colour, ratio), ...])] in the order of the results."""
    by_key = {}
    names = []
    for result in results:
        if not isinstance(result, dict) or "scenario" not in result or "impl" not in result:
            continue
        name = str(result["scenario"])
        if name not in names:
            names.append(name)
        by_key[(name, result["impl"])] = result
    rows = []
    for name in names:
        swift = by_key.get((name, "swift"))
        if swift is None:
            continue
        for label, sublabel, function in measures(name, swift):
            bars = []
            for impl, legend, colour in OTHERS:
                other = by_key.get((name, impl))
                if other is None:
                    continue
                value = function(swift, other)
                if value is not None:
                    bars.append((impl, legend, colour, value))
            if bars:
                rows.append((label, sublabel, bars))
    return rows


def wrap(text, size, width):
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if line and text_width(candidate, size) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line:
        lines.append(line)
    return lines or [""]


class Axis:
    def __init__(self, low, high, x0, x1):
        self.low, self.high, self.x0, self.x1 = low, high, x0, x1

    def x(self, value):
        value = min(max(value, self.low), self.high)
        span = math.log10(self.high) - math.log10(self.low)
        return self.x0 + (math.log10(value) - math.log10(self.low)) / span * (self.x1 - self.x0)


def choose_axis(ratios, x0, x1, label_size):
    """The narrowest ladder range holding 0.5x to 2x, every ratio, and every value label."""
    smallest, largest = min(ratios + [0.5]), max(ratios + [2])
    low_index = max([i for i, v in enumerate(LADDER) if v <= smallest] or [0])
    high_index = min([i for i, v in enumerate(LADDER) if v >= largest] or [len(LADDER) - 1])
    while True:
        axis = Axis(LADDER[low_index], LADDER[high_index], x0, x1)
        left_short = right_short = False
        for value in ratios:
            room = text_width(format_ratio(value), label_size) + 6
            if value < 1 and axis.x(value) - room < x0:
                left_short = True
            if value >= 1 and axis.x(value) + room > x1:
                right_short = True
        grown = False
        if left_short and low_index > 0:
            low_index -= 1
            grown = True
        if right_short and high_index < len(LADDER) - 1:
            high_index += 1
            grown = True
        if not grown:
            return axis


def choose_ticks(axis, size):
    """The ladder values in range whose labels do not crowd: the powers of ten, then the others
    from the nearest to 1x outwards."""
    candidates = [value for value in LADDER if axis.low <= value <= axis.high]
    first = [value for value in candidates if math.log10(value) == round(math.log10(value))]
    kept = list(first)
    for value in sorted(candidates, key=lambda value: (abs(math.log10(value)), value)):
        if value in kept:
            continue
        need = text_width(format_tick(value), size) + 10
        if all(abs(axis.x(value) - axis.x(other)) >= need for other in kept):
            kept.append(value)
    return sorted(kept)


def f(value):
    """Coordinates with one decimal, so that the output does not depend on float noise."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def svg_text(x, y, text, size, anchor="start", weight=None, fill="#222", extra=""):
    attributes = f'x="{f(x)}" y="{f(y)}" font-size="{size}" fill="{fill}"'
    if anchor != "start":
        attributes += f' text-anchor="{anchor}"'
    if weight:
        attributes += f' font-weight="{weight}"'
    return f"<text {attributes}{extra}>{escape(text)}</text>"


def render(results, title):
    rows = rows_of(results)
    title_size, label_size, sublabel_size, value_size, tick_size = 18, 14, 11, 12, 12
    # The row labels' column: as wide as the widest label (bold is wider), within reason.
    widest = max([text_width(label, label_size) * 1.08 for label, _, _ in rows]
                 + [text_width(sublabel, sublabel_size) for _, sublabel, _ in rows] + [150])
    x0, x1 = min(math.ceil(widest) + 30, 400), WIDTH - RIGHT
    out = []
    y = TOP_PAD

    title_lines = wrap(title, title_size, WIDTH - 40)
    for line in title_lines:
        y += title_size + 4
        out.append(svg_text(WIDTH / 2, y, line, title_size, anchor="middle", weight="bold"))
    y += 22
    out.append(
        svg_text(
            WIDTH / 2,
            y,
            "swift's ratio to each other implementation: more than 1\u00d7 means swift is better",
            13,
            anchor="middle",
            fill="#555",
        )
    )
    y += 22

    # Legend, centred.
    swatch, gap = 14, 28
    items = [(legend, colour, swatch + 6 + text_width(legend, 13)) for _, legend, colour in OTHERS]
    total = sum(width for _, _, width in items) + gap * (len(items) - 1)
    lx = WIDTH / 2 - total / 2
    for legend, colour, width in items:
        out.append(f'<rect x="{f(lx)}" y="{f(y)}" width="{swatch}" height="{swatch}" fill="{colour}"/>')
        out.append(svg_text(lx + swatch + 6, y + swatch - 2, legend, 13))
        lx += width + gap
    y += swatch + 16

    if not rows:
        y += 30
        out.append(svg_text(WIDTH / 2, y, "no scenario has swift and cnats or python results", 14, anchor="middle"))
        y += 30
        return finish(out, y)

    ratios = [value for _, _, bars in rows for _, _, _, value in bars]
    axis = choose_axis(ratios, x0, x1, value_size)
    plot_top = y
    groups = []
    for label, sublabel, bars in rows:
        height = GROUP_PAD * 2 + len(bars) * BAR + (len(bars) - 1) * BAR_GAP
        groups.append((y, height, label, sublabel, bars))
        y += height
    plot_bottom = y

    # Alternate bands, then gridlines, then bars and labels over them.
    for index, (top, height, _, _, _) in enumerate(groups):
        if index % 2 == 0:
            out.append(f'<rect x="{f(8)}" y="{f(top)}" width="{f(x1 + 10 - 8)}" height="{f(height)}" fill="#f3f4f6"/>')
    ticks = choose_ticks(axis, tick_size)
    for value in ticks:
        x = axis.x(value)
        if value == 1:
            continue
        out.append(
            f'<line x1="{f(x)}" y1="{f(plot_top)}" x2="{f(x)}" y2="{f(plot_bottom)}" stroke="#c8ccd2" stroke-width="1"/>'
        )
    for top, height, label, sublabel, bars in groups:
        middle = top + height / 2
        out.append(svg_text(x0 - 12, middle - 1, label, label_size, anchor="end", weight="bold"))
        out.append(svg_text(x0 - 12, middle + sublabel_size + 2, sublabel, sublabel_size, anchor="end", fill="#666"))
        bar_y = top + GROUP_PAD
        one = axis.x(1)
        for impl, legend, colour, value in bars:
            end = axis.x(value)
            left, right = min(one, end), max(one, end)
            out.append(
                f'<rect x="{f(left)}" y="{f(bar_y)}" width="{f(max(right - left, 1))}" height="{BAR}" fill="{colour}">'
                f"<title>{escape(f'{label}, swift {legend}: {format_ratio(value)}')}</title></rect>"
            )
            baseline = bar_y + BAR / 2 + value_size * 0.36
            text = format_ratio(value)
            room = text_width(text, value_size) + 5
            # Outside the bar's end; inside it (white) when a value beyond the axis leaves no room.
            if value >= 1 and right + room <= WIDTH - 4:
                out.append(svg_text(right + 5, baseline, text, value_size))
            elif value >= 1:
                out.append(svg_text(right - 5, baseline, text, value_size, anchor="end", fill="#fff", weight="bold"))
            elif left - room >= x0 - 8:
                out.append(svg_text(left - 5, baseline, text, value_size, anchor="end"))
            else:
                out.append(svg_text(left + 5, baseline, text, value_size, fill="#fff", weight="bold"))
            bar_y += BAR + BAR_GAP
    one = axis.x(1)
    out.append(
        f'<line x1="{f(one)}" y1="{f(plot_top - 6)}" x2="{f(one)}" y2="{f(plot_bottom)}" stroke="#222" stroke-width="1.5"/>'
    )

    # The axis below.
    out.append(f'<line x1="{f(x0)}" y1="{f(plot_bottom)}" x2="{f(x1)}" y2="{f(plot_bottom)}" stroke="#444" stroke-width="1"/>')
    for value in ticks:
        x = axis.x(value)
        out.append(f'<line x1="{f(x)}" y1="{f(plot_bottom)}" x2="{f(x)}" y2="{f(plot_bottom + 5)}" stroke="#444" stroke-width="1"/>')
        weight = "bold" if value == 1 else None
        out.append(svg_text(x, plot_bottom + 20, format_tick(value), tick_size, anchor="middle", weight=weight))
    y = plot_bottom + 42
    out.append(
        svg_text(
            (x0 + x1) / 2,
            y,
            "log scale; throughput: swift \u00f7 other; latency, memory and times: other \u00f7 swift",
            12,
            anchor="middle",
            fill="#555",
        )
    )
    y += 16
    return finish(out, y)


def finish(body, height):
    height = math.ceil(height)
    head = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT}">',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def write_svg(results, path, title):
    """Writes the chart of results (a list of Benchmarks/run result dicts) to path."""
    document = render(results, title)
    with open(path, "w", encoding="utf-8", newline="\n") as output:
        output.write(document)
