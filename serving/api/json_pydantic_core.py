"""``JsonFastPath``: a Python before-validator with a path in Rust for the usual JSON values.

pydantic-core calls a ``BeforeValidator`` for every value, which cost most of the parse of a
1,000-claim request (~6 date and ~11 optional fields per item). The core schemas here accept,
without a Python call, the values the request schemas' rules (``serving.api.schemas``) would turn
into the same result; anything else still goes to the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema


@dataclass(frozen=True, eq=False)  # hashed by identity: Annotated metadata must be hashable
class JsonFastPath:
    """``Annotated`` metadata standing for ``BeforeValidator(rule)``, with a path in Rust for JSON.

    On JSON input, the first of ``fast`` (pydantic-core schemas) that accepts the value returns
    what ``rule`` would have returned for it, and the annotated type validates that as before;
    values none of them accepts go to ``rule``, which alone decides what else is accepted. Python
    input goes to ``rule`` as before. A ``rule`` that refuses values raises ValueError(``refusal``),
    its only error: then ``fast`` return values the annotated type passes as they are, and a refused
    value is reported as ``rule`` reports it. The JSON schema is the one ``rule``'s type had."""

    rule: Callable[[Any], Any]
    fast: tuple[CoreSchema, ...]
    refusal: str | None = None

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        annotated = handler(source)
        python = core_schema.no_info_before_validator_function(self.rule, annotated)
        json: CoreSchema
        if self.refusal is None:
            rule = core_schema.no_info_plain_validator_function(self.rule)
            first = core_schema.union_schema([*self.fast, rule], mode="left_to_right")
            json = core_schema.chain_schema([first, annotated])
        else:  # whichever choices failed, the one error ``rule`` raises (its ctx holds the error)
            json = core_schema.union_schema(
                [*self.fast, python],
                mode="left_to_right",
                custom_error_type="value_error",
                custom_error_context={"error": ValueError(self.refusal)},  # type: ignore[dict-item]
            )
        return core_schema.json_or_python_schema(json_schema=json, python_schema=python)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        assert schema["type"] == "json-or-python"
        return handler(schema["python_schema"])


STRIPPED = r"\s\x1c-\x1f"
r"""What ``str.strip()`` removes, as a regex class: Unicode White_Space (Rust's ``\s``, and what
pydantic-core's ``strip_whitespace`` trims) and the separators U+001C to U+001F."""
JSON_TEXT = core_schema.str_schema(
    strict=True, strip_whitespace=True, pattern=rf"(?s)^[^{STRIPPED}](.*[^{STRIPPED}])?$"
)
"""A string with something in it, stripped (refused if U+001C-U+001F is left at an end)."""
JSON_MISSING = (
    core_schema.none_schema(),
    core_schema.chain_schema(
        [
            core_schema.str_schema(strict=True, pattern=rf"^[{STRIPPED}]*$"),
            core_schema.with_default_schema(
                core_schema.none_schema(), default=None, on_error="default"
            ),
        ]
    ),
)
"""null, and an empty or blank string as None."""
JSON_NUMBER = core_schema.union_schema(
    [core_schema.float_schema(strict=True), core_schema.int_schema(strict=True)], mode="smart"
)
"""A JSON number as ``rule`` receives it, int or float: Decimal is then made from ``repr(float)``.
(Not ``decimal_schema``: it writes a JSON float the Rust way, 100.0 as "100", and some long
floats with another last digit.) Smart mode: a float returns at once, an integer stays int."""
JSON_ISO_DATE = core_schema.chain_schema(
    [
        core_schema.str_schema(
            strict=True, strip_whitespace=True, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
        ),
        core_schema.date_schema(),
    ]
)
"""``YYYY-MM-DD`` in ASCII digits, whitespace around it or not, as the date (if there is one).
The pattern keeps out what pydantic's date parsing also reads: integer strings as Unix
timestamps ("86400"), and datetimes at midnight (lax mode, as in the second step here)."""
