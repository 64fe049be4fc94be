"""Which segment may stand where: the loops of the 837 (P and I) and 835 as small state tables.

Each state lists the segments it allows; a segment that starts a loop moves to that loop's
state. This is the loop structure of the implementation guides (005010X222A1, X223A2, X221A1
and their 4010 forerunners) at the level the mapping needs: enough to refuse a file whose
segments stand where no guide puts them (an SVC before any CLP, a CLM before any subscriber, an
unknown segment id), not a validator of every element and code list.
"""

from __future__ import annotations

SE = "SE"


def _table(
    states: dict[str, tuple[tuple[str, ...], dict[str, str]]],
) -> dict[str, dict[str, str]]:
    """Expand (segments that stay, segments that move) into one lookup per state; SE ends all."""
    table: dict[str, dict[str, str]] = {}
    for state, (stay, moves) in states.items():
        lookup = {segment: state for segment in stay}
        lookup.update(moves)
        lookup[SE] = SE
        table[state] = lookup
    table[SE] = {}
    return table


# --- 837: HL decides the level (20 billing provider, 22 subscriber, 23 patient), marked "HL". --
_HL = {"HL": "HL"}
_CLAIM_START = {"CLM": "claim", **_HL}
_LINE_START = {"LX": "line", **_CLAIM_START}
_IN_CLAIM = {"NM1": "claim_name", "SBR": "other_payer", **_LINE_START}
_IN_LINE = {"NM1": "line_name", "SVD": "line_adjudication", "LQ": "form", **_LINE_START}

CLAIM_STATES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "header": (("BHT", "REF"), {"NM1": "header_name"}),
    "header_name": (("PER", "N2", "N3", "N4", "REF"), {"NM1": "header_name", **_HL}),
    "provider": (("PRV", "CUR"), {"NM1": "provider_name", **_HL}),
    "provider_name": (("N2", "N3", "N4", "REF", "PER", "PRV"), {"NM1": "provider_name", **_HL}),
    "subscriber": (("SBR", "PAT", "DMG"), {"NM1": "subscriber_name", **_CLAIM_START}),
    "subscriber_name": (
        ("N2", "N3", "N4", "DMG", "REF", "PER"),
        {"NM1": "subscriber_name", **_CLAIM_START},
    ),
    "patient": (("PAT", "DMG"), {"NM1": "patient_name", **_CLAIM_START}),
    "patient_name": (
        ("N2", "N3", "N4", "DMG", "REF", "PER"),
        {"NM1": "patient_name", **_CLAIM_START},
    ),
    "claim": (
        (
            *("DTP", "CL1", "PWK", "CN1", "AMT", "REF", "K3", "NTE", "CR1", "CR2", "CR3", "CR4"),
            *("CR5", "CR6", "CR7", "CR8", "CRC", "HI", "HCP", "QTY", "MEA", "DN1", "DN2"),
        ),
        _IN_CLAIM,
    ),
    "claim_name": (("PRV", "N2", "N3", "N4", "REF", "PER"), _IN_CLAIM),
    "other_payer": (
        ("CAS", "AMT", "OI", "MIA", "MOA", "DMG"),
        {"NM1": "other_payer_name", **_IN_CLAIM},
    ),
    "other_payer_name": (
        ("N2", "N3", "N4", "REF", "DTP", "PER"),
        {"NM1": "other_payer_name", "SBR": "other_payer", **_LINE_START},
    ),
    "line": (
        (
            *("SV1", "SV2", "SV3", "SV4", "SV5", "SV6", "SV7", "TOO", "PWK", "CR1", "CR2"),
            *("CR3", "CR4", "CR5", "CRC", "DTP", "QTY", "MEA", "CN1", "REF", "AMT", "K3"),
            *("NTE", "PS1", "HCP", "HSD"),
        ),
        {"LIN": "drug", **_IN_LINE},
    ),
    "drug": (("CTP", "REF"), _IN_LINE),
    "line_name": (("PRV", "N2", "N3", "N4", "REF", "PER"), _IN_LINE),
    "line_adjudication": (("CAS", "DTP", "AMT"), _IN_LINE),
    "form": (("FRM",), _IN_LINE),
}
CLAIM_GRAMMAR = _table(CLAIM_STATES)
HL_LEVELS = {"20": "provider", "22": "subscriber", "23": "patient"}

# --- 835 ---------------------------------------------------------------------------------------
_CLAIM_OR_END = {"CLP": "claim", "LX": "claim_group", "PLB": "summary"}
REMIT_STATES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "header": (("BPR", "TRN", "CUR", "REF", "DTM"), {"N1": "payer"}),
    "payer": (("N2", "N3", "N4", "REF", "PER"), {"N1": "payee"}),
    "payee": (("N2", "N3", "N4", "REF", "RDM"), _CLAIM_OR_END),
    "claim_group": (("TS3", "TS2"), _CLAIM_OR_END),
    "claim": (
        ("CAS", "NM1", "MIA", "MOA", "REF", "DTM", "PER", "AMT", "QTY"),
        {"SVC": "line", **_CLAIM_OR_END},
    ),
    "line": (("DTM", "CAS", "REF", "AMT", "QTY", "LQ"), {"SVC": "line", **_CLAIM_OR_END}),
    "summary": (("PLB",), {}),
}
REMIT_GRAMMAR = _table(REMIT_STATES)


def expected_here(grammar: dict[str, dict[str, str]], state: str) -> str:
    """The segments a state allows, for an error message."""
    return ", ".join(sorted(grammar[state]))
