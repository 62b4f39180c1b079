"""Generate prometheus/rules/slo.yml: the availability SLO, its recording rules and burn-rate alerts.

One source for every window: the production file is this script with its
defaults, and the end-to-end paging test runs the very same rules with every
window divided by ``--scale`` (e.g. ``--scale 60``: 1h becomes 1m).

    python scripts/gen_slo_rules.py                   # rewrite prometheus/rules/slo.yml
    python scripts/gen_slo_rules.py --check           # exit 1 if the committed file is stale
    python scripts/gen_slo_rules.py --objective 99.5 --scale 60 -o /tmp/slo.yml

The SLI counts the negotiator's ``baton_requests_total{endpoint, outcome}``
(``baton_common.metrics.Outcome``): bad events are the outcomes the
orchestrator owes (``capacity``, ``failed``); the gateway's own mistakes
(``client_error``, ``payment_error``) are not requests the SLO counts at all.

Alerts follow the Google SRE Workbook's multiwindow, multi-burn-rate table
(ch. 5, table 5-8), over a 30-day period: both windows of a pair must burn
above the factor, so an alert stops soon after the errors do. No ``for:``:
the short window is what keeps a blip from paging (the Workbook's choice,
and Sloth's).

    page    1h / 5m   x14.4   (2% of the budget gone in an hour)
    page    6h / 30m  x6      (5% in six hours)
    ticket  3d / 6h   x1      (10% in three days)
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "libs" / "common"))

from baton_common.metrics import REQUESTS_METRIC, Outcome  # noqa: E402

OUTPUT = REPO / "prometheus" / "rules" / "slo.yml"
PERIOD = "30d"
BAD = (Outcome.CAPACITY, Outcome.FAILED)
NOT_COUNTED = (Outcome.CLIENT_ERROR, Outcome.PAYMENT_ERROR)
MIN_OBJECTIVE, MAX_OBJECTIVE = 99.0, 99.99


@dataclass(frozen=True)
class BurnAlert:
    name: str
    severity: str
    long: str
    short: str
    factor: float
    budget_share: str


ALERTS = (
    BurnAlert("AvailabilityBudgetBurnFast", "page", "1h", "5m", 14.4, "2%"),
    BurnAlert("AvailabilityBudgetBurnMedium", "page", "6h", "30m", 6, "5%"),
    BurnAlert("AvailabilityBudgetBurnSlow", "ticket", "3d", "6h", 1, "10%"),
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", duration)
    if not m:
        raise ValueError(f"not a duration: {duration!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def duration(secs: int) -> str:
    """The shortest Prometheus duration for ``secs`` (whole seconds)."""
    for unit in ("d", "h", "m"):
        if secs % _UNITS[unit] == 0:
            return f"{secs // _UNITS[unit]}{unit}"
    return f"{secs}s"


def scaled(window: str, scale: int) -> str:
    secs = seconds(window) // scale
    if secs < 1:
        raise ValueError(f"--scale {scale} makes {window} shorter than a second")
    return duration(secs)


def _fmt(x: float) -> str:
    return f"{x:g}"


def rules(objective: float = 99.9, scale: int = 1) -> dict:
    """The rule file as a dict: ``objective`` in percent, every window divided by ``scale``."""
    if not MIN_OBJECTIVE <= objective <= MAX_OBJECTIVE:
        raise ValueError(f"objective {objective}% is outside [{MIN_OBJECTIVE}, {MAX_OBJECTIVE}]")
    total = f"{REQUESTS_METRIC}_total"
    bad = "|".join(BAD)
    not_counted = "|".join(NOT_COUNTED)
    windows = sorted({w for a in ALERTS for w in (a.long, a.short)} | {PERIOD}, key=seconds)
    sli = {"slo": "availability", "service": "negotiator"}

    def ratio(window: str) -> str:
        return f"baton:slo_errors:ratio_rate{window}"

    recording = [
        {"record": "baton:slo_objective:ratio", "expr": f"vector({_fmt(objective / 100)})", "labels": sli},
        {"record": "baton:slo_error_budget:ratio", "expr": "1 - baton:slo_objective:ratio", "labels": sli},
    ]
    for window in windows:
        w = scaled(window, scale)
        recording.append({
            "record": ratio(window),
            "expr": (f'sum(rate({total}{{outcome=~"{bad}"}}[{w}]))\n/\n'
                     f'sum(rate({total}{{outcome!~"{not_counted}"}}[{w}]))'),
            "labels": sli,
        })
    # What is left of the 30-day budget: 1 = untouched, 0 = spent, below 0 = overspent.
    recording.append({
        "record": "baton:slo_error_budget_remaining:ratio",
        "expr": (f"1 - {ratio(PERIOD)} / on(slo, service) baton:slo_error_budget:ratio"),
        "labels": {},
    })
    recording.append({
        "record": "baton:slo_burn_rate:ratio_rate1h",
        "expr": f"{ratio('1h')} / on(slo, service) baton:slo_error_budget:ratio",
        "labels": {},
    })
    for rule in recording:
        if not rule["labels"]:
            del rule["labels"]

    alerts = []
    for a in ALERTS:
        threshold = f"on(slo, service) group_left() ({_fmt(a.factor)} * baton:slo_error_budget:ratio)"
        long_w, short_w = scaled(a.long, scale), scaled(a.short, scale)
        alerts.append({
            "alert": a.name,
            "expr": (f"(\n  {ratio(a.long)} > {threshold}\nand\n  {ratio(a.short)} > {threshold}\n)"),
            "labels": {"severity": a.severity, "long_window": long_w, "short_window": short_w,
                       "burn_rate": _fmt(a.factor)},
            "annotations": {
                "summary": f"Gateway requests burn the availability error budget {_fmt(a.factor)}x too fast",
                "description": (f"More than {_fmt(round(a.factor * (100 - objective), 6))}% of the requests the "
                                f"orchestrator owes failed over the last {long_w} and the last {short_w} (objective "
                                f"{_fmt(objective)}%): at this rate {a.budget_share} of the 30-day error budget is gone "
                                f"within {long_w}. Outcomes capacity and failed count; client and payment errors do not."),
                "runbook": "docs/monitoring.md#availability-slo",
            },
        })

    # One group: its rules run in order at each evaluation, so an alert reads the ratios of this very round.
    return {"groups": [{"name": "baton-slo-availability", "rules": recording + alerts}]}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(objective: float = 99.9, scale: int = 1) -> str:
    note = (f"# GENERATED by scripts/gen_slo_rules.py (objective {_fmt(objective)}%, windows / {scale}): "
            "do not edit; change the script and rerun it.\n"
            "# tests/deploy/test_slo.py fails when this file is stale; prometheus/tests/slo_test.yml tests it.\n")
    return note + yaml.dump(rules(objective, scale), Dumper=_Dumper, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objective", type=float, default=99.9,
                   help=f"availability target in percent, {MIN_OBJECTIVE:g} to {MAX_OBJECTIVE:g} (default 99.9)")
    p.add_argument("--scale", type=int, default=1, help="divide every window by this (the end-to-end test)")
    p.add_argument("-o", "--output", type=Path, default=OUTPUT)
    p.add_argument("--check", action="store_true", help="exit 1 if the output file differs from what would be written")
    args = p.parse_args(argv)
    try:
        text = render(args.objective, args.scale)
    except ValueError as exc:
        print(f"gen_slo_rules: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python scripts/gen_slo_rules.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
