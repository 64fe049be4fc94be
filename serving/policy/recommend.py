"""The policy's entry points: one recommendation per snapshot row (frame or dict rows), and the
actions the rules forbid for one account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from typing import Any

import pandas as pd

from features.errors import ArscoreError
from serving.policy.config import Policy
from serving.policy.decide import Recommendation, decide
from serving.policy.facts import Facts, account_facts
from serving.policy.forbidden import forbidden
from serving.policy.row_facts import facts_of_rows
from serving.policy.rules import Block, Context


def iter_recommendations(
    rows: pd.DataFrame, policy: Policy, model_reasons: list[list[dict]] | None = None
) -> Iterator[Recommendation]:
    """One recommendation per snapshot row, in order, made one at a time.

    ``rows`` carries the snapshot columns plus the model's ``probability_collected`` and
    ``expected_recovery``; ``model_reasons`` are the scorer's reasons per row (dicts with a
    ``sentence``), quoted when the model decided. A nightly batch streams these to its writer
    instead of holding millions of recommendations at once.
    """
    check_model_reasons(model_reasons, len(rows))
    return _decisions(account_facts(rows, policy), policy, model_reasons)


def check_model_reasons(model_reasons: Sized | None, n_rows: int) -> None:
    """Refuse model reasons that are not one list per row."""
    if model_reasons is not None and len(model_reasons) != n_rows:
        raise ArscoreError(
            f"policy input: {len(model_reasons)} lists of model reasons for {n_rows} rows"
        )


def _decisions(
    facts: Iterable[Facts], policy: Policy, model_reasons: list[list[dict]] | None
) -> Iterator[Recommendation]:
    """The recommendation of each account's facts, quoting its model reasons if given."""
    ctx = Context.of(policy)
    if model_reasons is None:
        return (decide(f, ctx) for f in facts)
    return (decide(f, ctx, reasons) for f, reasons in zip(facts, model_reasons, strict=True))


def recommend(
    rows: pd.DataFrame, policy: Policy, model_reasons: list[list[dict]] | None = None
) -> list[Recommendation]:
    """One recommendation per snapshot row, in order (see ``iter_recommendations``)."""
    return list(iter_recommendations(rows, policy, model_reasons))


def recommend_rows(
    records: Sequence[Mapping[str, Any]],
    policy: Policy,
    model_reasons: list[list[dict]] | None = None,
) -> list[Recommendation]:
    """``recommend`` on snapshot records (dicts) instead of a frame: the online path's, free of
    the fixed cost of pandas column operations (``serving.policy.row_facts``)."""
    check_model_reasons(model_reasons, len(records))
    return list(_decisions(facts_of_rows(records, policy), policy, model_reasons))


def forbidden_actions(row: Mapping[str, Any] | pd.Series, policy: Policy) -> dict[str, Block]:
    """Actions the policy forbids for one account (a snapshot row): action -> (rule_id, sentence).

    The write-off endpoint refuses a forbidden write-off with the rule's sentence. Columns the
    rules read but the caller does not have may be left out only for a credit balance.
    """
    (facts,) = account_facts(pd.DataFrame([dict(row)]), policy)
    return forbidden(facts, Context.of(policy))
