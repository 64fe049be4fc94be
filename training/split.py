"""Time split of labelled snapshots into train, validation and test, with a leakage guard.

Rows are assigned by their as-of date:

    train        as_of <= train_end
    validation   train_end < as_of <= valid_end
    test         as_of > valid_end

Censored rows (label horizon past the end of the data) are dropped everywhere: they are never
labelled negative. The leakage guard then drops every row whose label window reaches into the
next split: a snapshot labelled over (as_of, as_of + H] is kept only if as_of + H is on or
before the first as-of date of the following split. Without it, the payments that make a train
label would be the very payments the validation rows are scored on (the same claims, a month
later), and early stopping and calibration would look better than they are. The price is a
gap of about H days of as-of dates before validation and before test.

When the cutoffs are not given, they are derived from the data: test is the last
``test_periods`` uncensored as-of dates, validation the last ``valid_periods`` as-of dates whose
labels close before test begins, and train everything whose labels close before validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from features.errors import ArscoreError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Cutoffs:
    """The two as-of boundaries of a split (inclusive upper bounds of train and validation)."""

    train_end: pd.Timestamp
    valid_end: pd.Timestamp


@dataclass(frozen=True)
class Split:
    """Labelled snapshot rows of each split and the windows they cover."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    cutoffs: Cutoffs
    horizon_days: int

    def frames(self) -> dict[str, pd.DataFrame]:
        """The three frames by split name."""
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def window(self, name: str) -> tuple[str, str]:
        """First and last as-of date of a split, as ISO dates."""
        as_of = self.frames()[name]["as_of"]
        return as_of.min().date().isoformat(), as_of.max().date().isoformat()

    def summary(self) -> pd.DataFrame:
        """Rows, as-of window and collection rate per split."""
        rows = []
        for name, frame in self.frames().items():
            first, last = self.window(name)
            rows.append(
                {
                    "split": name,
                    "rows": len(frame),
                    "as_of_dates": frame["as_of"].nunique(),
                    "first_as_of": first,
                    "last_as_of": last,
                    "collected_rate": float(frame["collected"].astype("float64").mean()),
                }
            )
        return pd.DataFrame(rows)


def labelled(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Rows with a label: not censored and ``collected`` known."""
    missing = [c for c in ("as_of", "collected", "censored") if c not in snapshots.columns]
    if missing:
        raise ArscoreError("snapshots lack label column(s): " + ", ".join(missing))
    known = ~snapshots["censored"].astype(bool) & snapshots["collected"].notna()
    return snapshots[known.to_numpy()]


def label_end(as_of: pd.Series, horizon_days: int) -> pd.Series:
    """The last day of each row's label window."""
    return as_of + pd.Timedelta(days=horizon_days)


def derive_cutoffs(
    snapshots: pd.DataFrame, horizon_days: int, test_periods: int = 3, valid_periods: int = 3
) -> Cutoffs:
    """Cutoffs from the data: the last uncensored as-of dates test, the ones before validation."""
    dates = pd.Series(sorted(labelled(snapshots)["as_of"].unique()))
    if len(dates) < test_periods + 2:
        raise ArscoreError(
            f"only {len(dates)} labelled as-of dates: too few for {test_periods} test periods, "
            "a validation period and training (generate or load a longer history)"
        )
    horizon = pd.Timedelta(days=horizon_days)
    test_start = dates.iloc[-test_periods]
    valid_end = dates.iloc[-test_periods - 1]
    valid_candidates = dates[dates + horizon <= test_start]
    if len(valid_candidates) < valid_periods + 1:
        raise ArscoreError(
            f"the history is too short for a {horizon_days}-day horizon: validation needs "
            f"{valid_periods} as-of dates whose labels close before the test window "
            f"({test_start.date()}) and training needs at least one before them"
        )
    valid_start = valid_candidates.iloc[-valid_periods]
    train_end = dates[dates < valid_start].iloc[-1]
    return Cutoffs(train_end=pd.Timestamp(train_end), valid_end=pd.Timestamp(valid_end))


def _to_timestamp(value: date | pd.Timestamp | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).as_unit("ns")


def time_split(
    snapshots: pd.DataFrame,
    horizon_days: int,
    train_end: date | pd.Timestamp | None = None,
    valid_end: date | pd.Timestamp | None = None,
    test_periods: int = 3,
    valid_periods: int = 3,
) -> Split:
    """Train, validation and test rows by as-of date, censored rows and leaking rows dropped."""
    if train_end is None or valid_end is None:
        derived = derive_cutoffs(snapshots, horizon_days, test_periods, valid_periods)
        train_end = train_end if train_end is not None else derived.train_end
        valid_end = valid_end if valid_end is not None else derived.valid_end
    cutoffs = Cutoffs(_to_timestamp(train_end), _to_timestamp(valid_end))
    if cutoffs.train_end >= cutoffs.valid_end:
        raise ArscoreError(
            f"train_end {cutoffs.train_end.date()} must be before valid_end "
            f"{cutoffs.valid_end.date()}"
        )
    rows = labelled(snapshots)
    as_of = rows["as_of"]
    parts = {
        "train": rows[(as_of <= cutoffs.train_end).to_numpy()],
        "validation": rows[((as_of > cutoffs.train_end) & (as_of <= cutoffs.valid_end)).to_numpy()],
        "test": rows[(as_of > cutoffs.valid_end).to_numpy()],
    }
    for name, following in (("train", "validation"), ("validation", "test")):
        if parts[following].empty:
            raise ArscoreError(f"no labelled {following} rows after {name} with these cutoffs")
        next_start = parts[following]["as_of"].min()
        closes_in_time = label_end(parts[name]["as_of"], horizon_days) <= next_start
        parts[name] = parts[name][closes_in_time.to_numpy()]
    for name, frame in parts.items():
        if frame.empty:
            raise ArscoreError(
                f"the {name} split is empty after dropping rows whose {horizon_days}-day label "
                f"window reaches into the next split (train_end {cutoffs.train_end.date()}, "
                f"valid_end {cutoffs.valid_end.date()})"
            )
    return Split(
        train=parts["train"].reset_index(drop=True),
        validation=parts["validation"].reset_index(drop=True),
        test=parts["test"].reset_index(drop=True),
        cutoffs=cutoffs,
        horizon_days=horizon_days,
    )
