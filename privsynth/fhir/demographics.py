"""The synthetic Patient resource: gender, birth date (drawn inside the age year), US Core
race and ethnicity extensions, ``address.state``, ``maritalStatus``, ``deceased[x]``, and
the fresh identifiers the schema lists (see :mod:`privsynth.identity`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from privsynth.fhir.day import add_years, day_between
from privsynth.fhir.instant import instant
from privsynth.fhir.plan import ETHNICITY_URL, RACE_URL, WritePlan, present
from privsynth.fhir.record import UTC, Concept
from privsynth.identity import Identity
from privsynth.schema.model import OTHER, CategoricalDomain, Column

OMB_SYSTEM = "urn:oid:2.16.840.1.113883.6.238"
FHIR_GENDERS = ("male", "female", "other", "unknown")
IDENTITY_COLUMNS = ("name", "mrn", "ssn", "phone", "email", "address")


def fhir_gender(plan: WritePlan, row: dict[str, Any]) -> str | None:
    """The row's gender, if it is a FHIR administrative gender."""
    gender_col = plan.patient.get("gender")
    gender = row.get(gender_col.name) if gender_col else None
    return gender if gender in FHIR_GENDERS else None


def home_state(plan: WritePlan, row: dict[str, Any]) -> str | None:
    """The row's state, unless it is missing or the 'other' bucket."""
    state_col = plan.patient.get("state")
    state = row.get(state_col.name) if state_col else None
    return state if present(state) and state != OTHER else None


def birth_date(plan: WritePlan, row: dict[str, Any], ref_date: dt.date, rng: np.random.Generator) -> dt.date:
    """A birth date inside the year of life the row's age names (never after the reference
    date); without an age, any day in the 90 years before the reference date."""
    age_col = plan.patient.get("age")
    age = row.get(age_col.name) if age_col else None
    if age is not None and present(age):
        birth = add_years(ref_date, -int(age) - 1) + dt.timedelta(days=int(rng.integers(1, 366)))
        return min(birth, ref_date)
    return day_between(dt.date(ref_date.year - 90, 1, 1), ref_date, rng)


def patient_resource(who: Identity, gender: str | None, birth: dt.date, plan: WritePlan, row: dict[str, Any],
                     kinds: frozenset[str]) -> dict[str, Any]:
    """The Patient resource of a synthetic row (without ``deceased[x]``: see :func:`record_end`)."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": who.id,
        "gender": gender or "unknown",
        "birthDate": birth.isoformat(),
        "meta": {"tag": [{"system": "urn:privsynth", "code": "synthetic",
                          "display": "Synthetic record (privsynth); not a real person"}]},
    }
    patient.update(identity_elements(who, kinds))
    extensions = _race_and_ethnicity(plan, row)
    if extensions:
        patient["extension"] = extensions
    marital = plan.patient.get("marital")
    if marital is not None and present(row.get(marital.name)):
        patient["maritalStatus"] = _marital_status(marital, str(row[marital.name]))
    return patient


def _display(col: Column, code: str) -> str | None:
    if isinstance(col.domain, CategoricalDomain):
        for c in col.domain.categories:
            if c.code == code:
                return c.display
    return None


def omb_category(plan: WritePlan, row: dict[str, Any], key: str) -> Concept | None:
    """The row's race or ethnicity (``key``) as an OMB category: a coded Concept, a text alone
    for 'other', None when the schema has no such column or the row no value."""
    col = plan.patient.get(key)
    if col is None or not present(row.get(col.name)):
        return None
    code = str(row[col.name])
    if code == OTHER:
        return Concept(None, None, "Other")
    text = _display(col, code)
    return Concept(col.output.get("system", OMB_SYSTEM), code, text or code)


def _race_and_ethnicity(plan: WritePlan, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The US Core race and ethnicity extensions of the row's values (OMB categories)."""
    extensions = []
    for key, url in (("race", RACE_URL), ("ethnicity", ETHNICITY_URL)):
        concept = omb_category(plan, row, key)
        if concept is None:
            continue
        sub: list[dict[str, Any]] = []
        if concept.code is not None:
            display = _display(plan.patient[key], concept.code)
            sub.append({"url": "ombCategory", "valueCoding": {
                "system": concept.system, "code": concept.code, "display": display}})
        sub.append({"url": "text", "valueString": concept.display})
        extensions.append({"url": url, "extension": sub})
    return extensions


def _marital_status(marital: Column, code: str) -> dict[str, Any]:
    if code == OTHER:
        return {"text": "Other"}
    coding = {"code": code, "display": _display(marital, code) or code}
    if "system" in marital.output:
        coding["system"] = marital.output["system"]
    return {"coding": [coding], "text": coding["display"]}


def record_end(patient: dict[str, Any], plan: WritePlan, row: dict[str, Any], birth: dt.date, ref_date: dt.date,
               rng: np.random.Generator) -> tuple[dt.date, dt.datetime | None]:
    """The last day of the record -- the reference date, or the death (written into
    ``patient`` as ``deceased[x]``) -- and the moment of death when the model dates it."""
    end, death = ref_date, None
    deceased, years_dead = plan.patient.get("deceased"), plan.patient.get("death_years")
    if deceased is not None and row.get(deceased.name) is True:
        years = row.get(years_dead.name) if years_dead is not None else None
        if years is not None and present(years):
            # inside the year before the reference that the whole years since the death name
            start = max(add_years(ref_date, -int(years) - 1) + dt.timedelta(days=1), birth)
            end = max(min(add_years(ref_date, -int(years)), ref_date), start)
            # not before the year of life of its latest onset begins (the rule holds by whole years)
            onsets = [int(row[o.name]) for f, o in plan.conditions if o is not None
                      and row.get(f.name) is True and present(row.get(o.name))]
            start = min(max(start, add_years(birth, max(onsets, default=0))), end)
            end = day_between(start, end, rng)
            death = dt.datetime.combine(end, dt.time(23, 59), tzinfo=UTC)  # after that day's events
            patient["deceasedDateTime"] = instant(death)
        else:
            patient["deceasedBoolean"] = True  # the model has no date: none is invented
    return end, death


def identity_elements(who: Identity, kinds: frozenset[str]) -> dict[str, Any]:
    """The Patient elements for the schema's direct identifiers (fresh values only)."""
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    out: dict[str, Any] = {}
    identifiers = []
    if "mrn" in kinds:
        identifiers.append({"type": {"coding": [{"system": v2, "code": "MR"}]},
                            "system": "urn:privsynth:synthetic-mrn", "value": who.mrn})
    if "ssn" in kinds:
        identifiers.append({"type": {"coding": [{"system": v2, "code": "SS"}]},
                            "system": "http://hl7.org/fhir/sid/us-ssn", "value": who.ssn})
    if identifiers:
        out["identifier"] = identifiers
    if "name" in kinds:
        out["name"] = [{"use": "official", "family": who.family, "given": [who.given]}]
    telecom = []
    if "phone" in kinds:
        telecom.append({"system": "phone", "value": who.phone, "use": "home"})
    if "email" in kinds:
        telecom.append({"system": "email", "value": who.email})
    if telecom:
        out["telecom"] = telecom
    address: dict[str, Any] = {"country": "US"}
    if who.state:
        address["state"] = who.state
    if "address" in kinds:
        address.update({"line": [who.line], "city": who.city, "postalCode": who.postal_code})
    out["address"] = [address]
    return out


def identity_row(who: Identity, kinds: frozenset[str]) -> dict[str, str]:
    """The fresh identifiers of one synthetic patient for the patient-view table."""
    values = {"name": who.name, "mrn": who.mrn, "ssn": who.ssn, "phone": who.phone, "email": who.email,
              "address": f"{who.line}, {who.city}"}
    return {"patient_id": who.id, **{k: values[k] for k in IDENTITY_COLUMNS if k in kinds}}
