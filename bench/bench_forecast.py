"""The cash forecast's full backtest on a generated history, one run per formulation.

Usage: .venv/bin/python bench/bench_forecast.py [--claims 100000] [--months 36] [--seed 7]
       [--origins 12] [--formulations rate,hazard,dollars] [--set KEY=VALUE ...]

For each formulation (``features.cash_model``): rolling monthly origins, each forecast from a
model fitted only on what was known at its origin, intervals calibrated on the errors known at
it; per week ahead WAPE, bias, pinball loss and the coverage of the 80% and 95% intervals,
against the liquidation curve by payer type and aging bucket and the trailing 13-week average.
Prints a Markdown table per formulation, a comparison line per formulation, whether the goal
(WAPE at least 25% below the liquidation curve over weeks 1-13, coverage within 5 points of
nominal) is met, and the machine's speed beside the run times.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time

import pandas as pd
from machine import python_speed_ms, speed_note

from features.history import validate_history
from training.config import parse_overrides
from training.forecast.backtest import run_backtest
from training.forecast.config import load_forecast_config
from training.synthetic import GeneratorConfig, generate_history

BENCH_KEY = b"bench-pseudonym-key-not-a-secret"
GOAL_REDUCTION, GOAL_COVERAGE_POINTS = 0.25, 0.05


def markdown_table(table: pd.DataFrame) -> str:
    """The per-week backtest table as Markdown."""
    header = (
        "| week | WAPE model | WAPE liquidation curve | WAPE trailing 13 weeks | bias model | "
        "bias liquidation curve | pinball (scaled) | coverage 80% | coverage 95% |"
    )
    lines = [header, "|" + " ---: |" * 9]
    for r in table.to_dict("records"):
        lines.append(
            f"| {r['week']} | {r['wape_model']:.1%} | {r['wape_liquidation_curve']:.1%} | "
            f"{r['wape_trailing_13_weeks']:.1%} | {r['bias_model']:+.1%} | "
            f"{r['bias_liquidation_curve']:+.1%} | {r['pinball_model']:.3f} | "
            f"{r['coverage_80']:.1%} | {r['coverage_95']:.1%} |"
        )
    return "\n".join(lines)


def goal_line(summary: dict[str, float]) -> str:
    """Whether the issue's goal is met, with the figures."""
    reduction = summary["wape_reduction_vs_liquidation"]
    gaps = abs(summary["coverage_80"] - 0.80), abs(summary["coverage_95"] - 0.95)
    met = reduction >= GOAL_REDUCTION and max(gaps) <= GOAL_COVERAGE_POINTS
    return (
        f"goal {'MET' if met else 'NOT MET'}: WAPE {reduction:.1%} below the liquidation curve "
        f"(goal >= 25%); coverage {summary['coverage_80']:.1%} at 80% and "
        f"{summary['coverage_95']:.1%} at 95% (goal within 5 points); at every weekly origin "
        f"{summary['weekly_origins_coverage_80']:.1%} / {summary['weekly_origins_coverage_95']:.1%}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--origins", type=int, default=12)
    parser.add_argument("--formulations", default="rate,hazard,dollars")
    parser.add_argument("--set", dest="assignments", action="append", default=[])
    args = parser.parse_args()
    speed_before = python_speed_ms()
    claims, transactions = generate_history(
        GeneratorConfig(
            n_claims=args.claims,
            seed=args.seed,
            months=args.months,
            end_date=datetime.date(2026, 9, 30),
        )
    )
    history = validate_history(claims, transactions, BENCH_KEY)
    print(
        f"history: {len(claims):,} claims, {len(transactions):,} transactions, {args.months} "
        f"months to 2026-09-30 (arscore generate --claims {args.claims} --months {args.months} "
        f"--seed {args.seed})",
        flush=True,
    )
    summaries = {}
    for formulation in args.formulations.split(","):
        overrides = parse_overrides([*args.assignments, f"formulation={formulation}"])
        config = load_forecast_config(overrides=overrides)
        started = time.perf_counter()
        result = run_backtest(history, config, origins=args.origins)
        elapsed = time.perf_counter() - started
        dates = result.run.calendar.evaluation
        print(
            f"\n### formulation {formulation}: {len(dates)} monthly origins {dates[0].date()} to "
            f"{dates[-1].date()}, {len(result.run.fits)} refits, {elapsed:.0f} s\n"
        )
        print(markdown_table(result.table))
        for r in result.sides.to_dict("records"):
            print(
                f"\n{r['side']} cash, weeks 1-13: WAPE model {r['wape_model']:.1%}, liquidation "
                f"curve {r['wape_liquidation_curve']:.1%}, trailing 13 weeks "
                f"{r['wape_trailing_13_weeks']:.1%}; bias model {r['bias_model']:+.1%}"
            )
        print("\n" + goal_line(result.summary), flush=True)
        summaries[formulation] = result.summary
    print("\n| formulation | WAPE 1-13 | vs liquidation curve | pinball | coverage 80% | 95% |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, s in summaries.items():
        print(
            f"| {name} | {s['wape_model']:.1%} | {-s['wape_reduction_vs_liquidation']:+.1%} | "
            f"{s['pinball_model']:.3f} | {s['coverage_80']:.1%} | {s['coverage_95']:.1%} |"
        )
    print("\n" + speed_note(speed_before, python_speed_ms()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
