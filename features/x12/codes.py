"""The code lists the mapping reads: claim filing indicators, denial CARCs, bills, PLB reasons.

Only what the mapping needs, each with where it comes from. The README's mapping table is the
user-facing account of these rules; a test holds each row.
"""

from __future__ import annotations

# SBR09 (837) and CLP06 (835) claim filing indicator -> payer_type. The list, plus the
# commercial plan kinds 12 PPO, 13 POS, 14 EPO, 15 indemnity and FI (federal employees program)
# and VA (veterans affairs plan); every other code is `other`.
CLAIM_FILING_PAYER_TYPE = {
    "MA": "medicare",
    "MB": "medicare",
    "16": "medicare_advantage",
    "MC": "medicaid",
    "CI": "commercial",
    "BL": "commercial",
    "HM": "commercial",
    "12": "commercial",
    "13": "commercial",
    "14": "commercial",
    "15": "commercial",
    "FI": "commercial",
    "CH": "tricare_va",
    "VA": "tricare_va",
    "WC": "workers_comp",
    "09": "self_pay",
}
OTHER_PAYER_TYPE = "other"


def payer_type(filing_indicator: str) -> str:
    """The payer type of a claim filing indicator code (``other`` when not listed)."""
    return CLAIM_FILING_PAYER_TYPE.get(filing_indicator.strip().upper(), OTHER_PAYER_TYPE)


# CARCs that deny (all or part of) a claim, as opposed to reducing it by contract: a CAS with one
# of these codes is a `denial` whatever its group other than PR (the issue names CO; an OA-18
# "exact duplicate" or a PI-50 denies as well, and posting them as adjustments would write the
# claim off). Not exhaustive: every other CO code is a contractual adjustment, since CO means the
# provider absorbs it.
DENIAL_CARCS = frozenset(
    (
        *("4", "5", "6", "7", "8", "9", "11", "15", "16", "18", "19", "20", "21", "22"),
        *("26", "27", "29", "31", "32", "33", "35", "39", "40", "49", "50", "51", "54", "55"),
        *("56", "58", "96", "97", "107", "109", "119", "146", "167", "170", "171", "172"),
        *("177", "181", "182", "183", "184", "185", "197", "198", "199", "200", "204", "226"),
        *("227", "234", "236", "242", "252", "B7", "B9", "B11"),
    )
)
PRIOR_PAYER_CARC = "23"  # OA-23: the impact of a prior payer's adjudication; never posted again
PATIENT_SHARE_CARCS = {"1": "deductible", "2": "coinsurance", "3": "copay"}
CAS_GROUPS = ("CO", "PR", "OA", "PI", "CR")  # CR (corrections and reversals) only in 4010
CAS_TRIPLETS = 6

# CLP02 claim status codes.
PROCESSED = frozenset(("1", "2", "3", "19", "20", "21"))
SECONDARY = frozenset(("2", "3", "20", "21"))
DENIED = "4"
REVERSAL = "22"
NOT_OUR_CLAIM = "23"
PREDETERMINATION = "25"
CLAIM_STATUSES = PROCESSED | {DENIED, REVERSAL, NOT_OUR_CLAIM, PREDETERMINATION}

# PLB03-1 adjustment reason codes that are named in the summary; WO with a claim reference in
# PLB03-2 is a refund on that claim, every PLB adjustment else goes to the provider ledger.
OVERPAYMENT_RECOVERY = "WO"
PLB_REASONS = {
    "WO": "overpayment recovery",
    "72": "authorized return",
    "FB": "forward balance",
    "L6": "interest owed",
    "CS": "adjustment",
    "90": "early payment allowance",
    "50": "late charge",
    "J1": "nonreimbursable",
    "IR": "internal revenue service withholding",
}

# The first two digits of an institutional type of bill (CLM05-1, CLP08, FHIR typeofbill) ->
# CMS place of service. 13 (hospital outpatient) is refined by its lines: an emergency room
# revenue code (045x) gives 23, a PO/PN modifier (off-campus provider-based department) 19.
FACILITY_PLACE_OF_SERVICE = {
    "11": "21",  # hospital inpatient (Part A)
    "12": "21",  # hospital inpatient (Part B only)
    "13": "22",  # hospital outpatient, on campus
    "14": "22",  # hospital, non-patient (referred diagnostic services)
    "18": "21",  # hospital swing bed
    "21": "31",  # skilled nursing facility, inpatient
    "22": "31",  # skilled nursing facility, inpatient (Part B)
    "23": "32",  # skilled nursing facility, outpatient -> nursing facility
    "32": "12",  # home health -> home
    "33": "12",
    "34": "12",
    "71": "72",  # rural health clinic
    "73": "50",  # federally qualified health center
    "77": "50",
    "81": "34",  # hospice (non-hospital based)
    "82": "34",  # hospice (hospital based)
    "83": "24",  # ambulatory surgery center
    "85": "22",  # critical access hospital, outpatient
}
OUTPATIENT_FACILITY = "13"
EMERGENCY_PLACE_OF_SERVICE = "23"
OFF_CAMPUS_PLACE_OF_SERVICE = "19"
OFF_CAMPUS_MODIFIERS = frozenset(("PO", "PN"))
UNKNOWN_PLACE_OF_SERVICE = "99"  # CMS "other place of service"


def institutional_place_of_service(
    type_of_bill: str, emergency: bool, off_campus: bool
) -> str | None:
    """The place of service of a type of bill (its facility digits), refined for hospital
    outpatient bills by the lines; None when the facility is not in the table."""
    digits = type_of_bill.strip().lstrip("0")[:2]
    place = FACILITY_PLACE_OF_SERVICE.get(digits)
    if place is not None and digits == OUTPATIENT_FACILITY:
        if emergency:
            return EMERGENCY_PLACE_OF_SERVICE
        if off_campus:
            return OFF_CAMPUS_PLACE_OF_SERVICE
    return place


def is_emergency_revenue_code(revenue_code: str) -> bool:
    """Revenue codes 0450-0459 (with or without the leading zero) are the emergency room."""
    code = revenue_code.strip()
    code = code[1:] if len(code) == 4 and code.startswith("0") else code
    return len(code) == 3 and code.startswith("45")
