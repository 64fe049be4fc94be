"""Write a POST /v1/scores request body for a few open demo claims (used by `make demo`).

Usage: python scripts/demo_request.py HISTORY_DIR OUT_JSON [--claims 1] [--as-of YYYY-MM-DD]
The claims are taken as exported (with their patient_id, which the server pseudonymizes on
arrival) together with their transactions up to the as-of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from features.history import find_table, read_raw


def _clean(value: object) -> object:
    return None if pd.isna(value) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--claims", type=int, default=1)
    parser.add_argument("--as-of", default="2026-09-30")
    args = parser.parse_args()
    claims = read_raw(find_table(args.history, "claims")).astype("string")
    transactions = read_raw(find_table(args.history, "transactions")).astype("string")
    transactions = transactions[transactions["date"] <= args.as_of]
    paid = transactions[transactions["type"].isin(["payment", "adjustment"])]["claim_id"]
    recent = claims[(claims["billed_date"] >= "2026-07-01") & (claims["billed_date"] <= args.as_of)]
    open_ids = recent[~recent["claim_id"].isin(paid)]["claim_id"].head(args.claims)
    items = []
    for claim_id in open_ids:
        claim = claims[claims["claim_id"] == claim_id].iloc[0]
        item = {name: _clean(value) for name, value in claim.items()}
        events = transactions[transactions["claim_id"] == claim_id].drop(columns="claim_id")
        item["transactions"] = [
            {k: _clean(v) for k, v in row.items() if not pd.isna(v)} for _, row in events.iterrows()
        ]
        item = {k: v for k, v in item.items() if v is not None}
        items.append(item)
    body = {"as_of": args.as_of, "reasons": True, "items": items}
    args.out.write_text(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
