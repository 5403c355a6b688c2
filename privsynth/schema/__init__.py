"""Schemas: the patient view, its sources in FHIR or tables, and its public domains."""

from privsynth.schema.load import load_schema
from privsynth.schema.model import (
    CategoricalDomain,
    Category,
    CodeGroup,
    Column,
    NumericDomain,
    Schema,
    Source,
    Where,
)

__all__ = [
    "CategoricalDomain",
    "Category",
    "CodeGroup",
    "Column",
    "NumericDomain",
    "Schema",
    "Source",
    "Where",
    "load_schema",
]
