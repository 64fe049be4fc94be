"""FHIR R4 ExplanationOfBenefit (CARIN Blue Button too) into the interchange format.

``read_fhir(paths)`` returns a ``FhirImport`` (claims, transactions, warnings, summary). The
package: ``resources`` (files, Bundles, NDJSON, values), ``eob`` (one EOB as a claim and its
transactions), ``reader`` (the whole import). Pure: files in, frames out.
"""

from features.fhir.reader import FhirImport, FhirSummary, read_fhir
from features.fhir.resources import FhirError, FhirLocation, fhir_files

__all__ = ["FhirError", "FhirImport", "FhirLocation", "FhirSummary", "fhir_files", "read_fhir"]
