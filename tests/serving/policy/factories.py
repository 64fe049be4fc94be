"""Policies for tests: the packaged default, and the default with some fields changed."""

from __future__ import annotations

from serving.policy.config import Policy, load_policy

DEFAULT = load_policy()


def policy_with(**changes: object) -> Policy:
    """The default policy with some fields changed; nested dicts are merged, not replaced."""

    def merge(base: dict, update: dict) -> dict:
        merged = dict(base)
        for key, value in update.items():
            is_nested = isinstance(value, dict) and isinstance(base.get(key), dict)
            merged[key] = merge(base[key], value) if is_nested else value
        return merged

    return Policy.model_validate(merge(DEFAULT.model_dump(), changes))
