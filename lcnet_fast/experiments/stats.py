"""Small statistics shared by the experiments: mean/std over seeds and medians of timings."""

from __future__ import annotations

import math
import statistics


def mean_std(values) -> tuple[float, float]:
    """(mean, sample std) of the finite values; std is 0.0 for one value, (nan, nan) for none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan
    if len(finite) == 1:
        return finite[0], 0.0
    return statistics.fmean(finite), statistics.stdev(finite)


def fmt_mean_std(values, digits: int = 1) -> str:
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "n/a"
    count = sum(1 for v in values if v is not None and math.isfinite(float(v)))
    if count == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def median(values) -> float:
    values = [float(v) for v in values]
    return statistics.median(values) if values else math.nan
