"""The few statistics the benchmark reports: medians, percentiles, ratios."""

import statistics


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[index]


def summary_ms(seconds):
    """Median and p99 of durations in seconds, as milliseconds."""
    return {"n": len(seconds), "median_ms": round(statistics.median(seconds) * 1e3, 3),
            "p99_ms": round(percentile(seconds, 99) * 1e3, 3)}


def summary_us(seconds):
    """Median and p99 of durations in seconds, as microseconds."""
    return {"n": len(seconds), "median_us": round(statistics.median(seconds) * 1e6, 1),
            "p99_us": round(percentile(seconds, 99) * 1e6, 1)}


def ratio(a, b, digits=3):
    return round(a / b, digits) if a and b else None
