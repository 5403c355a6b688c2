"""The OMOP CDM v5.4 tables privsynth writes: their fields in DDL order, types, required
flags and keys, and the DDL that loads them into DuckDB or PostgreSQL.

The field lists are OHDSI's (``OHDSI/CommonDataModel``, ``inst/csv/OMOP_CDMv5.4_Field_Level.csv``
and ``inst/ddl/5.4/postgresql/OMOPCDM_postgresql_5.4_ddl.sql``), cut to the tables a
synthetic EHR record fills. Foreign keys to the vocabulary (``CONCEPT``) are not declared:
the release carries no vocabulary (load OHDSI's from Athena beside it; docs/omop.md).

>>> TABLES["death"].fields[0]
Field(name='person_id', type='integer', required=True)
>>> "PRIMARY KEY (person_id)" in ddl("duckdb")
True
"""

from __future__ import annotations

from dataclasses import dataclass

CDM_VERSION = "5.4"
CDM_VERSION_CONCEPT = 756265  # "OMOP CDM Version 5.4.0"


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # integer, float, date, datetime, text, or varchar(n)
    required: bool


@dataclass(frozen=True)
class Table:
    name: str
    fields: tuple[Field, ...]
    primary_key: str | None
    foreign_keys: tuple[tuple[str, str], ...]  # (field, table whose primary key it names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


# name: type, a trailing "!" when required
_SPEC = {
    "person": ("person_id:integer! gender_concept_id:integer! year_of_birth:integer! month_of_birth:integer "
               "day_of_birth:integer birth_datetime:datetime race_concept_id:integer! ethnicity_concept_id:integer! "
               "location_id:integer provider_id:integer care_site_id:integer person_source_value:varchar(50) "
               "gender_source_value:varchar(50) gender_source_concept_id:integer race_source_value:varchar(50) "
               "race_source_concept_id:integer ethnicity_source_value:varchar(50) "
               "ethnicity_source_concept_id:integer"),
    "observation_period": ("observation_period_id:integer! person_id:integer! observation_period_start_date:date! "
                           "observation_period_end_date:date! period_type_concept_id:integer!"),
    "visit_occurrence": ("visit_occurrence_id:integer! person_id:integer! visit_concept_id:integer! "
                         "visit_start_date:date! visit_start_datetime:datetime visit_end_date:date! "
                         "visit_end_datetime:datetime visit_type_concept_id:integer! provider_id:integer "
                         "care_site_id:integer visit_source_value:varchar(50) visit_source_concept_id:integer "
                         "admitted_from_concept_id:integer admitted_from_source_value:varchar(50) "
                         "discharged_to_concept_id:integer discharged_to_source_value:varchar(50) "
                         "preceding_visit_occurrence_id:integer"),
    "condition_occurrence": ("condition_occurrence_id:integer! person_id:integer! condition_concept_id:integer! "
                             "condition_start_date:date! condition_start_datetime:datetime condition_end_date:date "
                             "condition_end_datetime:datetime condition_type_concept_id:integer! "
                             "condition_status_concept_id:integer stop_reason:varchar(20) provider_id:integer "
                             "visit_occurrence_id:integer visit_detail_id:integer condition_source_value:varchar(50) "
                             "condition_source_concept_id:integer condition_status_source_value:varchar(50)"),
    "measurement": ("measurement_id:integer! person_id:integer! measurement_concept_id:integer! "
                    "measurement_date:date! measurement_datetime:datetime measurement_time:varchar(10) "
                    "measurement_type_concept_id:integer! operator_concept_id:integer value_as_number:float "
                    "value_as_concept_id:integer unit_concept_id:integer range_low:float range_high:float "
                    "provider_id:integer visit_occurrence_id:integer visit_detail_id:integer "
                    "measurement_source_value:varchar(50) measurement_source_concept_id:integer "
                    "unit_source_value:varchar(50) unit_source_concept_id:integer value_source_value:varchar(50) "
                    "measurement_event_id:integer meas_event_field_concept_id:integer"),
    "observation": ("observation_id:integer! person_id:integer! observation_concept_id:integer! "
                    "observation_date:date! observation_datetime:datetime observation_type_concept_id:integer! "
                    "value_as_number:float value_as_string:varchar(60) value_as_concept_id:integer "
                    "qualifier_concept_id:integer unit_concept_id:integer provider_id:integer "
                    "visit_occurrence_id:integer visit_detail_id:integer observation_source_value:varchar(50) "
                    "observation_source_concept_id:integer unit_source_value:varchar(50) "
                    "qualifier_source_value:varchar(50) value_source_value:varchar(50) observation_event_id:integer "
                    "obs_event_field_concept_id:integer"),
    "drug_exposure": ("drug_exposure_id:integer! person_id:integer! drug_concept_id:integer! "
                      "drug_exposure_start_date:date! drug_exposure_start_datetime:datetime "
                      "drug_exposure_end_date:date! drug_exposure_end_datetime:datetime verbatim_end_date:date "
                      "drug_type_concept_id:integer! stop_reason:varchar(20) refills:integer quantity:float "
                      "days_supply:integer sig:text route_concept_id:integer lot_number:varchar(50) "
                      "provider_id:integer visit_occurrence_id:integer visit_detail_id:integer "
                      "drug_source_value:varchar(50) drug_source_concept_id:integer route_source_value:varchar(50) "
                      "dose_unit_source_value:varchar(50)"),
    "procedure_occurrence": ("procedure_occurrence_id:integer! person_id:integer! procedure_concept_id:integer! "
                             "procedure_date:date! procedure_datetime:datetime procedure_end_date:date "
                             "procedure_end_datetime:datetime procedure_type_concept_id:integer! "
                             "modifier_concept_id:integer quantity:integer provider_id:integer "
                             "visit_occurrence_id:integer visit_detail_id:integer procedure_source_value:varchar(50) "
                             "procedure_source_concept_id:integer modifier_source_value:varchar(50)"),
    "death": ("person_id:integer! death_date:date! death_datetime:datetime death_type_concept_id:integer "
              "cause_concept_id:integer cause_source_value:varchar(50) cause_source_concept_id:integer"),
    "cdm_source": ("cdm_source_name:varchar(255)! cdm_source_abbreviation:varchar(25)! cdm_holder:varchar(255)! "
                   "source_description:text source_documentation_reference:varchar(255) "
                   "cdm_etl_reference:varchar(255) source_release_date:date! cdm_release_date:date! "
                   "cdm_version:varchar(10) cdm_version_concept_id:integer! vocabulary_version:varchar(20)!"),
}
_KEYS: dict[str, tuple[str | None, tuple[tuple[str, str], ...]]] = {
    "person": ("person_id", ()),
    "observation_period": ("observation_period_id", (("person_id", "person"),)),
    "visit_occurrence": ("visit_occurrence_id", (("person_id", "person"),
                                                 ("preceding_visit_occurrence_id", "visit_occurrence"))),
    "condition_occurrence": ("condition_occurrence_id", (("person_id", "person"),
                                                         ("visit_occurrence_id", "visit_occurrence"))),
    "measurement": ("measurement_id", (("person_id", "person"), ("visit_occurrence_id", "visit_occurrence"))),
    "observation": ("observation_id", (("person_id", "person"), ("visit_occurrence_id", "visit_occurrence"))),
    "drug_exposure": ("drug_exposure_id", (("person_id", "person"), ("visit_occurrence_id", "visit_occurrence"))),
    "procedure_occurrence": ("procedure_occurrence_id", (("person_id", "person"),
                                                         ("visit_occurrence_id", "visit_occurrence"))),
    # OHDSI's DDL gives death no primary key; a person dies once, so privsynth declares person_id one
    "death": ("person_id", (("person_id", "person"),)),
    "cdm_source": (None, ()),
}


def _table(name: str) -> Table:
    fields = []
    for item in _SPEC[name].split():
        field, kind = item.split(":")
        fields.append(Field(field, kind.rstrip("!"), kind.endswith("!")))
    key, foreign = _KEYS[name]
    return Table(name, tuple(fields), key, foreign)


TABLES: dict[str, Table] = {name: _table(name) for name in _SPEC}  # in load order (a key before what names it)

_SQL_TYPES = {"integer": "INTEGER", "float": "NUMERIC", "date": "DATE", "datetime": "TIMESTAMP", "text": "TEXT"}


def sql_type(kind: str) -> str:
    return _SQL_TYPES.get(kind) or kind.upper()  # varchar(n)


def ddl(dialect: str = "duckdb") -> str:
    """CREATE TABLE statements with primary and foreign keys, in load order (DuckDB and
    PostgreSQL read the same text; ``dialect`` only names it in the header)."""
    if dialect not in ("duckdb", "postgresql"):
        raise ValueError(f"unknown SQL dialect '{dialect}'; allowed: duckdb, postgresql")
    out = [f"-- OMOP CDM v{CDM_VERSION}: the tables of a privsynth synthetic release ({dialect}).",
           "-- Field order and types follow OHDSI/CommonDataModel inst/ddl/5.4; concept foreign keys are left",
           "-- out (no vocabulary ships with the release). Load the CSV files in this order.", ""]
    for table in TABLES.values():
        lines = [f"    {f.name} {sql_type(f.type)}{' NOT NULL' if f.required else ' NULL'}" for f in table.fields]
        if table.primary_key:
            lines.append(f"    PRIMARY KEY ({table.primary_key})")
        lines += [f"    FOREIGN KEY ({field}) REFERENCES {target} ({TABLES[target].primary_key})"
                  for field, target in table.foreign_keys]
        out.append(f"CREATE TABLE {table.name} (\n" + ",\n".join(lines) + "\n);\n")
    return "\n".join(out)
