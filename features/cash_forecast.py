"""The 13-week cash forecast of today's open A/R: a pure function of the history, the loaded
cash model and the as-of date.

``forecast_cash(history, model, as_of, weeks=13, by=())`` builds the point-in-time snapshot of
every open balance at ``as_of`` (``features.snapshots``), asks the model for the expected cash
of each balance in each week, sums it (in total and, with ``by``, per payer type and/or side of
the cash) and puts the model's conformal intervals around each sum. Nothing dated after
``as_of`` is read, and nothing reads the wall clock.

The forecast frame has one row per week and group: ``as_of``, ``week`` (1..weeks), ``week_start``
and ``week_end`` (week w is the days (as_of + 7(w-1), as_of + 7w]), the group columns when asked
(missing on the total rows), ``expected``, ``lower_80``, ``upper_80``, ``lower_95``,
``upper_95`` (dollars, rounded to the cent), and ``open_balance`` (the group's open A/R today).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.cash_model import (
    BALANCE_COLUMN,
    GROUP_COLUMNS,
    LEVELS,
    CashForecastModel,
    Intervals,
    group_key,
    grouping_key,
)
from features.cash_weeks import HORIZON_WEEKS, SIDES, week_bounds
from features.errors import ArscoreError
from features.history import History
from features.snapshots import build_snapshots

VALUE_COLUMNS = ("expected", "lower_80", "upper_80", "lower_95", "upper_95")


def parse_breakdown(by: Sequence[str] | str | None) -> tuple[str, ...]:
    """The group columns asked for (``"payer_type,responsibility"`` or a sequence), in their
    canonical order; an unknown or repeated name is an error naming the allowed ones."""
    if by is None:
        return ()
    names = [n.strip() for n in (by.split(",") if isinstance(by, str) else by) if n.strip()]
    unknown = [n for n in names if n not in GROUP_COLUMNS]
    if unknown or len(set(names)) != len(names):
        raise ArscoreError(
            f"--by {','.join(names)}: expected distinct names among {', '.join(GROUP_COLUMNS)}"
        )
    return tuple(n for n in GROUP_COLUMNS if n in names)


def group_sums(
    snapshots: pd.DataFrame, arrays: dict[str, np.ndarray], by: tuple[str, ...]
) -> pd.DataFrame:
    """Sum (accounts, weeks, sides) cash arrays over the accounts of each group.

    The result is long: the ``by`` columns, ``week`` and one column per array; with
    ``responsibility`` in ``by`` the two sides are separate groups, otherwise they are added
    up. No ``by``: one row per week, the total. Groups are in sorted order.
    """
    names = list(arrays)
    stacked = np.stack([arrays[name] for name in names], axis=-1)  # (n, weeks, sides, k)
    n, weeks = stacked.shape[0], stacked.shape[1]
    account_keys = [c for c in by if c != "responsibility"]
    if account_keys:
        index = pd.MultiIndex.from_frame(snapshots[account_keys].astype("string"))
        codes, uniques = pd.factorize(index, sort=True)
        groups = pd.DataFrame(list(uniques), columns=account_keys)
    else:
        codes, groups = np.zeros(n, dtype=np.int64), pd.DataFrame(index=[0])
    sums = np.zeros((len(groups), *stacked.shape[1:]))
    np.add.at(sums, codes, stacked)
    if "responsibility" in by:
        sides = pd.DataFrame({"responsibility": list(SIDES)})
        groups = groups.merge(sides, how="cross") if account_keys else sides
        sums = sums.transpose(0, 2, 1, 3).reshape(len(groups), weeks, len(names))
    else:
        sums = sums.sum(axis=2)
    long = groups.loc[groups.index.repeat(weeks)].reset_index(drop=True)
    long = long[list(by)] if by else pd.DataFrame(index=range(len(groups) * weeks))
    long["week"] = np.tile(np.arange(1, weeks + 1, dtype=np.int64), len(groups))
    for position, name in enumerate(names):
        long[name] = sums[:, :, position].reshape(-1)
    return long


def sums_by_group(snapshots: pd.DataFrame, cash: np.ndarray, by: tuple[str, ...]) -> pd.DataFrame:
    """One (accounts, weeks, sides) cash array summed per group: the ``by`` columns, ``week``,
    ``amount`` (``group_sums`` of one array)."""
    return group_sums(snapshots, {"amount": cash}, by)


def balances_by_group(snapshots: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    """Open A/R of each group at the as-of date (the side split uses who owes it today)."""
    frame = pd.DataFrame({key: snapshots[key].astype("string") for key in by if key})
    if "responsibility" in by:
        balances = [snapshots["payer_balance"], snapshots["patient_balance"]]
        frame = pd.concat(
            [
                frame.assign(responsibility=side, open_balance=b.to_numpy())
                for side, b in zip(SIDES, balances, strict=True)
            ],
            ignore_index=True,
        )
    else:
        frame["open_balance"] = snapshots[BALANCE_COLUMN].to_numpy()
    if not by:
        return pd.DataFrame({"open_balance": [float(frame["open_balance"].sum())]})
    return frame.groupby(list(by), sort=True, dropna=False)["open_balance"].sum().reset_index()


def with_intervals(
    sums: pd.DataFrame, intervals: Intervals, by: tuple[str, ...], weeks: int
) -> pd.DataFrame:
    """``expected`` (the summed ``amount``) and the 80% and 95% intervals around it."""
    out = sums.rename(columns={"amount": "expected"}).copy()
    grouping = grouping_key(by)
    keys = (
        [group_key(tuple(v)) for v in out[list(by)].itertuples(index=False)]
        if by
        else [""] * len(out)
    )
    position = out["week"].to_numpy() - 1
    expected = out["expected"].to_numpy(dtype=np.float64)
    for level in LEVELS:
        q = np.empty(len(out))
        for key in set(keys):
            rows = np.asarray([k == key for k in keys])
            q[rows] = intervals.quantile(grouping, key, level, weeks)[position[rows]]
        name = f"{round(level * 100)}"
        out[f"lower_{name}"] = np.clip(expected * (1.0 - q), 0.0, None)
        out[f"upper_{name}"] = expected * (1.0 + q)
    return out


def forecast_frame(
    model: CashForecastModel,
    snapshots: pd.DataFrame,
    as_of: pd.Timestamp,
    weeks: int = HORIZON_WEEKS,
    by: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The forecast frame of the open balances in ``snapshots`` (all dated ``as_of``)."""
    as_of = pd.Timestamp(as_of).normalize()
    if len(snapshots) and (snapshots["as_of"] != as_of).any():
        raise ArscoreError(f"the snapshot rows are not all dated {as_of.date()}")
    cash = model.expected_cash(snapshots, weeks)
    frames = []
    for grouping in ((), by) if by else ((),):
        sums = with_intervals(
            sums_by_group(snapshots, cash, grouping), model.intervals, grouping, weeks
        )
        balances = balances_by_group(snapshots, grouping)
        sums = (
            sums.merge(balances, on=list(grouping), how="left")
            if grouping
            else sums.assign(open_balance=float(balances["open_balance"].iloc[0]))
        )
        frames.append(sums)
    result = pd.concat(frames, ignore_index=True)
    result = result.merge(week_bounds(as_of, weeks), on="week", how="left")
    result.insert(0, "as_of", as_of)
    for column in (*VALUE_COLUMNS, "open_balance"):
        result[column] = result[column].fillna(0.0).round(2)
    columns = ["as_of", "week", "week_start", "week_end", *by, *VALUE_COLUMNS, "open_balance"]
    return result[columns]


def forecast_cash(
    history: History,
    model: CashForecastModel,
    as_of: pd.Timestamp,
    weeks: int = HORIZON_WEEKS,
    by: Sequence[str] | str | None = (),
) -> pd.DataFrame:
    """Expected cash per week from the balances open at ``as_of``, with 80% and 95% intervals.

    ``history`` is the validated history (``features.history``); ``model`` the loaded
    ``CashForecastModel``; ``by`` any of ``payer_type`` and ``responsibility``. New charges
    (claims billed after ``as_of``) are not forecast.
    """
    as_of = pd.Timestamp(as_of).normalize()
    breakdown = parse_breakdown(by)
    snapshots = build_snapshots(history, [as_of], labels=None)
    if len(snapshots) == 0:
        raise ArscoreError(f"no balance is open as of {as_of.date()} in this history")
    return forecast_frame(model, snapshots, as_of, weeks, breakdown)
