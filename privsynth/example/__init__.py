"""Rule-based example data: a seeded, realistic example hospital FHIR R4 export for ``privsynth demo``."""
