"""`theworld eval --model A --model B ...`: each model in its own first mode, side by side, and each against the
one before it as paired differences with 95% intervals (`evaluation.comparison`)."""

from rich.table import Table

from theworld.cli.common import console
from theworld.evaluation.comparison import paired_difference, subset
from theworld.evaluation.toyworld_qa import EvalReport  # torch: imported only when models are compared

__all__ = ["compare_models", "print_comparison"]

FAMILIES = ("static", "temporal", "all")


def compare_models(reports: dict[str, EvalReport]) -> list[dict]:
    """Each model after the first against the one before it, in each model's first mode (its own number of world
    steps; the image only for a model without a world): per family and kind, b - a with its interval."""
    names = list(reports)
    first = reports[names[0]]
    for name in names[1:]:
        if reports[name].kinds != first.kinds:
            raise ValueError(f"{name} was asked other questions than {names[0]}; compare them with the same --clips")
    rows = []
    for a, b in zip(names, names[1:], strict=False):
        hits_a, hits_b = _main_hits(reports[a]), _main_hits(reports[b])
        row = {"a": f"{a} ({_main_mode(reports[a])})", "b": f"{b} ({_main_mode(reports[b])})"}
        for group in (*FAMILIES, *_kinds(first)):
            labels = first.families if group in FAMILIES else first.kinds
            difference = paired_difference(subset(hits_a, labels, group), subset(hits_b, labels, group))
            row[group] = {"difference": difference.difference, "low": difference.low, "high": difference.high}
        rows.append(row)
    return rows


def print_comparison(reports: dict[str, EvalReport], comparison: list[dict]) -> None:
    first = next(iter(reports.values()))
    side_by_side = Table(title="the models side by side, each in its own first mode")
    side_by_side.add_column("questions")
    for name, report in reports.items():
        side_by_side.add_column(f"{name}\n({_main_mode(report)})", justify="right")
    for group in (*FAMILIES, *_kinds(first)):
        side_by_side.add_row(group, *[f"{100 * r.accuracy[_main_mode(r)][group]:.1f}%" for r in reports.values()])
    console.print(side_by_side)
    differences = Table(title="b - a in points, with its paired 95% interval over the same questions")
    differences.add_column("questions")
    for row in comparison:
        differences.add_column(f"{row['b']}\n- {row['a']}", justify="right")
    for group in (*FAMILIES, *_kinds(first)):
        differences.add_row(group, *[_points(row[group]) for row in comparison])
    console.print(differences)


def _main_mode(report: EvalReport) -> str:
    return next(iter(report.hits))


def _main_hits(report: EvalReport) -> list[bool]:
    return report.hits[_main_mode(report)]


def _kinds(report: EvalReport) -> list[str]:
    return sorted(set(report.kinds))


def _points(difference: dict) -> str:
    return f"{100 * difference['difference']:+.1f} [{100 * difference['low']:+.1f}, {100 * difference['high']:+.1f}]"
