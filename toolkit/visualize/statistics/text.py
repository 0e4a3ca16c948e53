"""The statistics view's plain-text form: for consoles, logs and ``repr``."""
from __future__ import annotations

from toolkit.visualize.html import fmt_num, fmt_pct, plain
from toolkit.visualize.statistics.model import (DISTANCE_NAME, Dataset, Feature,
                                                common_statistics, missing_share)


def statistics_text(features: list[Feature], labels: list[str],
                    datasets: list[tuple[str, Dataset]], limit: int = 60) -> str:
    """Each dataset's size, then each feature's numbers per dataset (the first ``limit``
    features of each kind) and its distance."""
    summary = ", ".join(f"{plain(label, 40)}: {fmt_num(ds.num_examples)} examples"
                        for label, ds in datasets)
    lines = [f"Feature statistics ({len(features)} features; {summary})"]
    multi = len(labels) > 1
    for kind, heading in (("numeric", "Numeric"), ("categorical", "Categorical"),
                          ("other", "Other")):
        chosen = [f for f in features if f.kind == kind]
        if not chosen:
            continue
        lines.append(f"{heading} features ({len(chosen)}):")
        for feature in chosen[:limit]:
            for i, f in enumerate(feature.per_dataset):
                who = f" [{plain(labels[i], 20)}]" if multi else ""
                name = f"  {plain(feature.name, 40)}{who}"
                if f is None:
                    lines.append(f"{name}: not in this dataset")
                elif kind == "numeric":
                    s = f.num_stats
                    lines.append(
                        f"{name}: count {fmt_num(s.common_stats.num_non_missing)}, missing "
                        f"{fmt_pct(missing_share(f))}, mean {fmt_num(s.mean)}, "
                        f"std {fmt_num(s.std_dev)}, min {fmt_num(s.min)}, "
                        f"median {fmt_num(s.median)}, max {fmt_num(s.max)}")
                elif kind == "categorical":
                    s = f.string_stats
                    top = (f", top {plain(s.top_values[0].value, 40)!r} "
                           f"({fmt_num(s.top_values[0].frequency)})" if s.top_values else "")
                    lines.append(f"{name}: count {fmt_num(s.common_stats.num_non_missing)}, "
                                 f"missing {fmt_pct(missing_share(f))}, "
                                 f"unique {fmt_num(s.unique)}{top}")
                else:
                    lines.append(f"{name}: count {fmt_num(common_statistics(f).num_non_missing)}")
            if multi and feature.distance is not None:
                lines.append(f"    {DISTANCE_NAME[feature.kind]}: {feature.distance:.4f}")
        if len(chosen) > limit:
            lines.append(f"  … and {len(chosen) - limit} more")
    return "\n".join(lines)
