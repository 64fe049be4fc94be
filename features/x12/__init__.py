"""Our own X12 reader: 837 claims and 835 remittances into the interchange format.

``read_x12(claim_paths, remit_paths)`` returns an ``X12Import`` (claims, transactions, the
provider ledger, warnings, a summary). The package: ``envelope`` (separators, ISA/GS/ST),
``grammar`` (which segment may stand where), ``claims837`` and ``remittance835`` (the two
mappings), ``posting`` (remittances as transactions, with the field's rules), ``codes`` (the
code lists), ``values`` (amounts and dates), ``errors`` and ``reader`` (the whole import). No
dependency beyond pandas and numpy; nothing here trains or serves.
"""

from features.importing import ImportWarning
from features.x12.errors import Location, X12Error
from features.x12.reader import SOURCE_COLUMN, ImportSummary, X12Import, read_x12, x12_files

__all__ = [
    "SOURCE_COLUMN",
    "ImportSummary",
    "ImportWarning",
    "Location",
    "Origin",
    "X12Error",
    "X12Import",
    "read_x12",
    "x12_files",
]
