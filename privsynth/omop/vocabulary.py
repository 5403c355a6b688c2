"""The codes privsynth writes, mapped to OMOP concept ids by a small shipped table.

``concepts.csv`` (beside this module) lists exactly the codes the shipped schemas can write
-- SNOMED conditions and procedures, LOINC observations, RxNorm drugs, UCUM units, FHIR
genders, CDC race and ethnicity, v3 encounter classes -- each with its OMOP source concept,
the standard concept it maps to, the standard concept's domain (which table a row goes to)
and where the id was found (OHDSI's Synthea CDM 5.4 vocabulary shard of 09-APR-22, checked
against the OHDSI Phenotype Library, PEDSnet's codesets and the HL7 FHIR-to-OMOP IG). A code
not in the table, or one whose id could not be confirmed, is written with concept 0 and its
code in ``*_source_value``, and counted. No vocabulary is downloaded.

>>> v = Vocabulary.shipped()
>>> v.concept("http://snomed.info/sct", "44054006")
Concept(concept_id=201826, source_concept_id=201826, domain='Condition')
>>> v.concept("http://snomed.info/sct", "15777000").concept_id  # non-standard: "Maps to" 4311629
4311629
>>> v.concept("http://snomed.info/sct", "0000").concept_id
0
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

VOCABULARY_VERSION = "v5.0 09-APR-22 (map)"  # what the ids were checked against (cdm_source: 20 characters)


@dataclass(frozen=True)
class Concept:
    concept_id: int  # the standard concept (0: unmapped)
    source_concept_id: int  # the code's own concept (0: not an OMOP concept, or unmapped)
    domain: str  # the standard concept's domain: which table a row goes to ('' when unmapped)


UNMAPPED = Concept(0, 0, "")


@dataclass(frozen=True)
class Vocabulary:
    """(system, code) -> :class:`Concept`."""

    concepts: dict[tuple[str, str], Concept]

    @classmethod
    def shipped(cls) -> Vocabulary:
        text = resources.files("privsynth.omop").joinpath("concepts.csv").read_text(encoding="utf-8")
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            out[(row["system"], row["code"])] = Concept(int(row["concept_id"]), int(row["source_concept_id"]),
                                                        row["domain_id"] if int(row["concept_id"]) else "")
        return cls(out)

    def concept(self, system: str | None, code: str | None) -> Concept:
        if system is None or code is None:
            return UNMAPPED
        return self.concepts.get((system, code), UNMAPPED)
