"""FHIR R4 ExplanationOfBenefit (CARIN Blue Button too) into the interchange format: ``read_fhir``.

Files hold one resource, a Bundle (its ``entry[].resource``, nested Bundles too) or NDJSON (one
resource a line, as a bulk export writes). Patient, Coverage and Organization resources in the
same files give age, state and ZIP3, the payer type and the payer id. An EOB states a claim's
whole adjudication (unlike an 835, which adds to what came before), so a claim's latest EOB
(``created``) stands, and one named by another's ``related`` (relationship prior or replaces)
is replaced. Money is read as Decimal and kept in whole cents.

Per claim (EOB), dated ``payment.date`` (else ``created``):
- ``total[submitted]`` (else the items' ``net``) is the charge; ``payment.amount`` (else the
  ``benefit``/``paidtoprovider`` adjudication) a `payment` by the payer;
- ``deductible``, ``coinsurance`` and ``copay`` are transfers PR-1/2/3 to the patient, and what
  ``memberliability`` holds beyond them a PR transfer without a code;
- nothing paid with a denial CARC among the adjudication reasons is a `denial` of the charge;
  otherwise the charge less paid, patient share and ``priorpayerpaid`` (or less ``eligible``
  when it is given) is a contractual adjustment with the first other CARC given;
- RARC reasons go to ``rarc_code``.
"""

from __future__ import annotations

import datetime

from features.fhir.resources import FhirError, FhirLocation, cents, codings, fhir_date
from features.importing import ImportWarning
from features.x12 import codes
from features.x12.values import age_at

CARC_SYSTEM_MARK = "claim-adjustment-reason"
RARC_SYSTEM_MARK = "remittance-advice-remark"
SOPT_PAYER_TYPES = (  # Source of Payment Typology code prefix -> payer type, longest first
    ("11", "medicare_advantage"),
    ("1", "medicare"),
    ("2", "medicaid"),
    ("31", "tricare_va"),
    ("32", "tricare_va"),
    ("5", "commercial"),
    ("6", "commercial"),
    ("7", "commercial"),
    ("81", "self_pay"),
    ("95", "workers_comp"),
)
PATIENT_SHARES = (("deductible", "1"), ("coinsurance", "2"), ("copay", "3"))


def claim_identifier(eob: dict) -> str:
    """The claim's id: the referenced Claim's identifier, the EOB's ``uc`` (unique claim)
    identifier, its first identifier, or its resource id."""
    claim = eob.get("claim", {}).get("identifier", {}).get("value")
    if claim:
        return str(claim)
    identifiers = eob.get("identifier", [])
    for identifier in identifiers:
        types = identifier.get("type", {}).get("coding", [])
        if any(c.get("code") == "uc" for c in types) and identifier.get("value"):
            return str(identifier["value"])
    if identifiers and identifiers[0].get("value"):
        return str(identifiers[0]["value"])
    return str(eob.get("id", ""))


def _first_value(resource: dict | None) -> str | None:
    identifiers = (resource or {}).get("identifier", [])
    return str(identifiers[0]["value"]) if identifiers and identifiers[0].get("value") else None


def _category(adjudication: dict) -> list[str]:
    return [code for _, code in codings(adjudication.get("category"))]


class EobMapper:
    """One ExplanationOfBenefit as a claim and its transactions (money in cents, CCYYMMDD)."""

    def __init__(self, others: dict[str, dict], warnings: list[ImportWarning], summary):
        self.others = others
        self.warnings = warnings
        self.summary = summary

    def map(self, location: FhirLocation, eob: dict) -> tuple[dict, list[dict]]:
        """The claim row and the transaction rows of one EOB."""
        claim = self._claim(location, eob)
        return claim, self._events(location, eob, claim)

    def _claim(self, location: FhirLocation, eob: dict) -> dict:
        claim_id = claim_identifier(eob)
        if not claim_id:
            raise FhirError(location, "no claim identifier (claim, identifier or id)")
        reference = eob.get("patient", {})
        patient = self.others.get(reference.get("reference", ""))
        patient_id = (
            reference.get("identifier", {}).get("value")
            or _first_value(patient)
            or reference.get("reference")
        )
        if not patient_id:
            raise FhirError(location, "patient: expected a reference or an identifier")
        service = self._service_date(location, eob)
        claim_type = self._claim_type(eob)
        address = ((patient or {}).get("address") or [{}])[0]
        postal = str(address.get("postalCode", ""))
        birth = (patient or {}).get("birthDate")
        age = None
        if birth:
            born = fhir_date(birth, location, "Patient.birthDate")
            age = age_at(_as_date(born), _as_date(service))
        return {
            "claim_id": claim_id,
            "patient_id": str(patient_id),
            "payer_id": self._payer_id(eob),
            "payer_type": self._payer_type(eob),
            "claim_type": claim_type,
            "place_of_service": self._place_of_service(location, eob, claim_type, claim_id),
            "service_date": service,
            "billed_date": self._received(location, eob) or service,
            "total_charge": self._charge(location, eob),
            "expected_amount": None,
            "patient_age": age,
            "patient_state": address.get("state") or None,
            "patient_zip3": postal[:3] if postal[:3].isdigit() and len(postal) >= 3 else None,
        }

    def _service_date(self, location: FhirLocation, eob: dict) -> str:
        period = eob.get("billablePeriod", {})
        ends = [period.get("end") or period.get("start")]
        for item in eob.get("item", []):
            ends.append(item.get("servicedDate") or item.get("servicedPeriod", {}).get("end"))
        found = [fhir_date(end, location, "service date") for end in ends if end]
        if not found:
            raise FhirError(location, "no service date (billablePeriod, item.servicedDate)")
        return found[0] if ends[0] else max(found)

    def _claim_type(self, eob: dict) -> str:
        kinds = [code for _, code in codings(eob.get("type"))]
        if "institutional" in kinds:
            return "institutional"
        if "professional" not in kinds:
            self.summary.notes["EOB types other than institutional read as professional"] += 1
        return "professional"

    def _payer_id(self, eob: dict) -> str:
        insurer = eob.get("insurer", {})
        organization = self.others.get(insurer.get("reference", ""))
        return str(
            insurer.get("identifier", {}).get("value")
            or _first_value(organization)
            or insurer.get("reference")
            or insurer.get("display")
            or "UNKNOWN"
        )

    def _payer_type(self, eob: dict) -> str:
        insurance = eob.get("insurance", [])
        focal = [i for i in insurance if i.get("focal")] or insurance
        coverage = (
            self.others.get(focal[0].get("coverage", {}).get("reference", "")) if focal else None
        )
        for system, code in codings((coverage or {}).get("type")):
            if "sopt" in system.lower() or "nahdo" in system.lower():
                for prefix, payer_type in SOPT_PAYER_TYPES:
                    if code.startswith(prefix):
                        return payer_type
            if code.upper() in codes.CLAIM_FILING_PAYER_TYPE:
                return codes.payer_type(code)
        self.summary.notes["claims without a Coverage type read as payer type other"] += 1
        return codes.OTHER_PAYER_TYPE

    def _supporting(self, eob: dict, category: str) -> list[dict]:
        return [
            info
            for info in eob.get("supportingInfo", [])
            if category in [code for _, code in codings(info.get("category"))]
        ]

    def _received(self, location: FhirLocation, eob: dict) -> str | None:
        for info in self._supporting(eob, "clmrecvddate"):
            when = info.get("timingDate") or info.get("timingPeriod", {}).get("start")
            if when:
                return fhir_date(when, location, "supportingInfo clmrecvddate")
        return None

    def _charge(self, location: FhirLocation, eob: dict) -> int:
        for total in eob.get("total", []):
            if "submitted" in _category(total):
                return cents(total.get("amount"), location, "total[submitted]")
        nets = [item["net"] for item in eob.get("item", []) if "net" in item]
        if not nets:
            raise FhirError(location, "no charge: expected total[submitted] or item.net")
        return sum(cents(net, location, "item.net") for net in nets)

    def _place_of_service(
        self, location: FhirLocation, eob: dict, claim_type: str, claim_id: str
    ) -> str:
        items = eob.get("item", [])
        if claim_type == "professional":
            for item in items:
                found = codings(item.get("locationCodeableConcept"))
                if found:
                    return found[0][1]
            place = None
        else:
            bills = [codings(i.get("code")) for i in self._supporting(eob, "typeofbill")]
            revenue = [code for item in items for _, code in codings(item.get("revenue"))]
            modifiers = {
                code for item in items for m in item.get("modifier", []) for _, code in codings(m)
            }
            emergency = any(codes.is_emergency_revenue_code(code) for code in revenue)
            off_campus = bool(codes.OFF_CAMPUS_MODIFIERS & modifiers)
            place = next(
                (
                    codes.institutional_place_of_service(found[0][1], emergency, off_campus)
                    for found in bills
                    if found
                ),
                None,
            )
        if place is None:
            self.warnings.append(
                ImportWarning(
                    "no_place_of_service",
                    location,
                    f"no place of service or known type of bill: {codes.UNKNOWN_PLACE_OF_SERVICE}",
                    claim_id,
                )
            )
            place = codes.UNKNOWN_PLACE_OF_SERVICE
        return place

    def _events(self, location: FhirLocation, eob: dict, claim: dict) -> list[dict]:
        """Payment, patient shares, and a denial or the contractual adjustment."""
        amounts = _adjudicated(location, eob)
        payment = eob.get("payment", {})
        date = payment.get("date") or eob.get("created")
        day = fhir_date(date, location, "payment.date") if date else claim["service_date"]
        paid = (
            cents(payment["amount"], location, "payment.amount")
            if "amount" in payment
            else amounts.get("paidtoprovider", amounts.get("benefit", 0))
        )
        carcs, rarcs = _reasons(eob)
        rarc = rarcs[0] if rarcs else None
        base = {"claim_id": claim["claim_id"], "date": day}
        rows = []
        if paid > 0:
            rows.append({**base, "type": "payment", "amount": paid, "party": "payer"})
            self.summary.payments += 1
            self.summary.payment_cents += paid
        shares = 0
        for category, code in PATIENT_SHARES:
            share = amounts.get(category, 0)
            if share > 0:
                rows.append(_transfer(base, share, code))
                shares += share
        member = amounts.get("memberliability")
        if member is not None and member > shares:
            rows.append(_transfer(base, member - shares, None))
        patient = max(member or 0, shares)
        denial = next(((g, c) for g, c in carcs if c in codes.DENIAL_CARCS and g != "PR"), None)
        if paid == 0 and denial is not None:
            group = denial[0] or "CO"
            denied = {"carc_group": group, "carc_code": denial[1], "rarc_code": rarc}
            rows.append({**base, "type": "denial", "amount": claim["total_charge"], **denied})
            self.summary.denials += 1
            return rows
        rows += self._contractual(location, base, claim, amounts, paid, patient, carcs, rarc)
        return rows

    def _contractual(
        self,
        location: FhirLocation,
        base: dict,
        claim: dict,
        amounts: dict[str, int],
        paid: int,
        patient: int,
        carcs: list[tuple[str | None, str]],
        rarc: str | None,
    ) -> list[dict]:
        """What the provider absorbs: the charge less the allowed amount (or less paid, the
        patient's share and a prior payer's payment)."""
        prior = amounts.get("priorpayerpaid", 0)
        eligible = amounts.get("eligible")
        charge = claim["total_charge"]
        absorbed = charge - eligible if eligible is not None else charge - paid - patient - prior
        if (eligible is not None and eligible != paid + patient + prior) or absorbed < 0:
            self.warnings.append(
                ImportWarning(
                    "eob_balance",
                    location,
                    "paid, patient share and prior payer do not add up to the allowed amount "
                    "(or exceed the charge)",
                    claim["claim_id"],
                )
            )
        if absorbed <= 0:
            return []
        code = next(
            (c for g, c in carcs if g in (None, "CO") and c not in codes.DENIAL_CARCS), None
        )
        reasons = {"carc_group": "CO", "carc_code": code, "rarc_code": rarc}
        return [
            {**base, "type": "adjustment", "amount": absorbed, **reasons, "reason": "contractual"}
        ]


def _transfer(base: dict, amount: int, code: str | None) -> dict:
    moved = {"party": "patient", "carc_group": "PR", "carc_code": code}
    return {**base, "type": "transfer", "amount": amount, **moved}


def _adjudicated(location: FhirLocation, eob: dict) -> dict[str, int]:
    """Cents by adjudication category: ``total`` where given, else the items' and the
    claim-level adjudications summed."""
    found: dict[str, int] = {}
    for total in eob.get("total", []):
        for category in _category(total):
            found[category] = cents(total.get("amount"), location, f"total[{category}]")
    summed: dict[str, int] = {}
    adjudications = list(eob.get("adjudication", []))
    for item in eob.get("item", []):
        adjudications += item.get("adjudication", [])
    for adjudication in adjudications:
        if "amount" not in adjudication:
            continue
        amount = cents(adjudication["amount"], location, "adjudication.amount")
        for category in _category(adjudication):
            summed[category] = summed.get(category, 0) + amount
    return {**summed, **found}


def _reasons(eob: dict) -> tuple[list[tuple[str | None, str]], list[str]]:
    """CARCs (group, code; a ``CO-45`` style code gives its group) and RARCs of the EOB."""
    adjudications = list(eob.get("adjudication", []))
    for item in eob.get("item", []):
        adjudications += item.get("adjudication", [])
    carcs: list[tuple[str | None, str]] = []
    rarcs: list[str] = []
    for adjudication in adjudications:
        for system, code in codings(adjudication.get("reason")):
            if RARC_SYSTEM_MARK in system:
                rarcs.append(code)
            elif CARC_SYSTEM_MARK in system or system == "":
                group, _, rest = code.partition("-")
                carcs.append((group, rest) if rest and group in codes.CAS_GROUPS else (None, code))
    return carcs, rarcs


def _as_date(text: str) -> datetime.date:
    return datetime.date(int(text[:4]), int(text[4:6]), int(text[6:]))
