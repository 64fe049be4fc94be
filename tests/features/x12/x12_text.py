"""Small builders of X12 text for the tests: our own segments, wrapped in ISA/GS/ST envelopes.

Segments are written with ``*`` between elements and ``:`` between components; ``render``
turns them into a file with the separators a test asks for.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
PROFESSIONAL = "005010X222A1"
INSTITUTIONAL = "005010X223A2"
REMITTANCE = "005010X221A1"
PAYER_TAX_ID = "1512345678"


def isa(control: str = "000000001", version: str = "00501", date: str = "250310") -> str:
    """An ISA header with every field at full width (``^`` repetition, ``:`` component)."""
    repetition = "^" if version >= "00501" else "U"
    return (
        f"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *{date}*1200*"
        f"{repetition}*{version}*{control}*0*P*:"
    )


def envelope(
    sets: list[list[str]],
    kind: str,
    version: str,
    control: str = "000000001",
    group: str = "1",
    isa_version: str = "00501",
    date: str = "20250310",
) -> list[str]:
    """One interchange holding one functional group with the given transaction-set bodies."""
    functional = "HC" if kind == "837" else "HP"
    out = [isa(control, isa_version, date[2:])]
    out.append(f"GS*{functional}*SENDER*RECEIVER*{date}*1200*{group}*X*{version}")
    for number, body in enumerate(sets, start=1):
        st = f"{number:04d}"
        out.append(f"ST*{kind}*{st}*{version}" if isa_version >= "00501" else f"ST*{kind}*{st}")
        out += body
        out.append(f"SE*{len(body) + 2}*{st}")
    out += [f"GE*{len(sets)}*{group}", f"IEA*1*{control}"]
    return out


def render(
    segments: list[str],
    element: str = "*",
    component: str = ":",
    terminator: str = "~",
    breaks: str = "\n",
) -> str:
    """The file text of segments written with ``*`` and ``:``."""
    converted = [s.replace("*", element).replace(":", component) for s in segments]
    return (terminator + breaks).join(converted) + terminator + breaks


def write(path: Path, segments: list[str], **separators: str) -> Path:
    path.write_text(render(segments, **separators))
    return path


def remittance(
    claims: list[str],
    total: str = "0",
    date: str = "20250310",
    trace: str = "TRACE1",
    payer: str = "PAYER01",
    provider: list[str] = (),  # type: ignore[assignment]
) -> list[str]:
    """An 835 body: BPR (paying ``total`` on ``date``), TRN, payer, payee, claims, PLB."""
    return [
        f"BPR*I*{total}*C*ACH*CCP*01*011000015*DA*123*{PAYER_TAX_ID}**01*021000021*DA*456*{date}",
        f"TRN*1*{trace}*{PAYER_TAX_ID}",
        f"N1*PR*PAYER ONE*XV*{payer}",
        "N1*PE*OUR CLINIC*XX*1234567893",
        "LX*1",
        *claims,
        *provider,
    ]


def professional_claim(
    claim_id: str = "C1",
    charge: str = "100",
    place: str = "11",
    filing: str = "CI",
    payer: str = "PAYER01",
    record: str | None = "MRN1",
    birth: str | None = "19800315",
    state: str = "TX",
    postal: str = "75201",
    service: str = "20250301",
    frequency: str = "1",
    extra: list[str] = (),  # type: ignore[assignment]
) -> list[str]:
    """A subscriber loop (the patient) and one professional claim with one line."""
    return [
        "HL*{hl}*1*22*0",
        f"SBR*P*18*******{filing}",
        "NM1*IL*1*DOE*JANE****MI*MEMBER1",
        "N3*1 MAIN ST",
        f"N4*AUSTIN*{state}*{postal}",
        *([f"DMG*D8*{birth}*F"] if birth else []),
        f"NM1*PR*2*PAYER ONE*****PI*{payer}",
        f"CLM*{claim_id}*{charge}***{place}:B:{frequency}*Y*A*Y*Y",
        *([f"REF*EA*{record}"] if record else []),
        *extra,
        "HI*ABK:J069",
        "LX*1",
        f"SV1*HC:99213*{charge}*UN*1***1",
        f"DTP*472*D8*{service}",
    ]


def claims_body(claims: list[list[str]], billed: str = "20250305") -> list[str]:
    """An 837 body: BHT (billed on ``billed``), submitter, receiver, billing provider, claims."""
    body = [
        f"BHT*0019*00*BATCH1*{billed}*1200*CH",
        "NM1*41*2*OUR CLINIC*****46*SUB1",
        "PER*IC*BILLING*TE*5555550100",
        "NM1*40*2*CLEARINGHOUSE*****46*REC1",
        "HL*1**20*1",
        "NM1*85*2*OUR CLINIC*****XX*1234567893",
        "N3*1 CLINIC WAY",
        "N4*AUSTIN*TX*78701",
        "REF*EI*123456789",
    ]
    for number, claim in enumerate(claims, start=2):
        body += [segment.replace("{hl}", str(number)) for segment in claim]
    return body
