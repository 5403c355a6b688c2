"""The red flags: each a name, a sentence for a clinician and a check (:mod:`.check`).

:data:`FLAGS` lists them in the order reports show them: disease onset, procedures and
orders, inpatient stays and dates, drugs and their indications, measurements.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from privsynth.history.chart import CHOLESTEROL, CONDITION_GROUPS, Resource
from privsynth.history.redflag.check import (
    Check,
    admission_without_reason,
    after_death,
    antidiabetic_without_diabetes,
    before_birth,
    bmi_mismatch,
    child_cholesterol,
    diabetic_hba1c_without_diabetes,
    drug_without_indication,
    early_hba1c,
    empty_stay,
    frequent_admissions,
    glucose_without_diabetes,
    implausible_bmi,
    inverted_pressure,
    lab_swing,
    living_centenarian,
    low_hba1c,
    narrow_pulse_pressure,
    odd_mammography,
    onset_after,
    onset_before,
    outside_encounters,
    repeat_colonoscopy,
    same_day,
    short_child,
    tall_child,
    uncoded_order,
    undated_death,
    young_colonoscopy,
)


@dataclass(frozen=True)
class Flag:
    """One red flag: a premise (which patients it concerns) and a finding among them."""

    name: str
    sentence: str  # for a clinician: what is counted, and why it is odd
    check: Check

    def __call__(self, resources: Sequence[Resource], reference: dt.date) -> tuple[bool, bool]:
        applies, flagged = self.check(resources, reference)
        return applies, applies and flagged


UNCODED_ORDER = "drug or procedure without a code"


def _onset_flags() -> list[Flag]:
    """Disease onset too young: under 18 for each condition group, and the rarer early onsets."""
    early = [Flag(f"{label} onset under 18",
                  f"Of the patients with {label}, the share whose first onset (Condition.onsetDateTime, "
                  "else recordedDate) was before age 18.", onset_before(group, 18))
             for group, label in CONDITION_GROUPS]
    return early + [
        Flag("Alzheimer's before 50", "Of the patients with Alzheimer's disease, the share with onset before 50 "
             "(familial early-onset disease exists, but is rare).", onset_before("alzheimers", 50)),
        Flag("atrial fibrillation before 30", "Of the patients with atrial fibrillation, the share with onset "
             "before 30.", onset_before("atrial_fibrillation", 30)),
        Flag("stroke before 30", "Of the patients with a stroke, the share with the first before 30.",
             onset_before("stroke", 30)),
        Flag("COPD before 40", "Of the patients with COPD, the share with onset before 40 (GOLD: it is a "
             "disease of smokers past 40; alpha-1 antitrypsin deficiency is rare).", onset_before("copd", 40)),
        Flag("depression or anxiety before 6", "Of the patients with a depressive or anxiety disorder, the share "
             "with the first diagnosis before 6 (rare in preschool children).", onset_before("depression_anxiety", 6)),
        Flag("prediabetes after diabetes", "Of the patients with both prediabetes and diabetes dated, the share "
             "whose first prediabetes came after the diabetes (a stage before it, not after).",
             onset_after("prediabetes", "diabetes")),
    ]


def _care_flags() -> list[Flag]:
    """Procedures and orders: screening at odd ages, repeats, uncoded orders, care outside a visit."""
    return [
        Flag("repeat colonoscopy within 3 years", "Of the patients with a colonoscopy, the share with two on "
             "different days less than 3 years apart (screening repeats every 10 years; surveillance after "
             "polyps sooner).", repeat_colonoscopy),
        Flag("colonoscopy under 40", "Of the patients with a colonoscopy, the share with one before age 40 "
             "(screening starts at 45).", young_colonoscopy),
        Flag("mammography in a man or under 35", "Of the patients with a mammography, the share who are men or "
             "had one before 35.", odd_mammography),
        Flag("same drug or procedure >=2 times on one day", "Of the patients with a prescription or procedure, "
             "the share with the same coded drug or procedure twice or more on one calendar day.", same_day(2)),
        Flag("same drug or procedure >=3 times on one day", "As above, three times or more.", same_day(3)),
        Flag(UNCODED_ORDER, "Of the patients with a prescription or procedure, the share "
             "with one that names no drug or procedure (no coding).", uncoded_order),
        Flag("lab, drug or procedure outside any encounter", "Of the patients with a dated observation, "
             "prescription or procedure, the share with one that names no encounter and falls on a day no "
             "encounter covers (care happens at a visit).", outside_encounters),
    ]


def _record_flags() -> list[Flag]:
    """Inpatient stays and the dates of the record: admissions, birth and death."""
    return [
        Flag(">=10 inpatient admissions in 10 years", "Of all patients, the share with 10 or more inpatient "
             "stays (class IMP, ACUTE or NONAC) starting in the 10 years before the reference date.",
             frequent_admissions),
        Flag("admission without a reason", "Of the patients with an inpatient stay, the share with one that has "
             "no reasonCode or reasonReference and no Condition, Procedure or Observation recorded in it.",
             admission_without_reason),
        Flag("inpatient stay with nothing recorded", "Of the patients with an inpatient stay, the share with "
             "one that no resource (condition, observation, prescription, procedure) refers to.", empty_stay),
        Flag("HbA1c before 1980", "Of the patients with an HbA1c (LOINC 4548-4), the share with one before 1980 "
             "(it entered diabetes care in the late 1970s).", early_hba1c),
        Flag("event before birth", "Of the patients with a birth date and a dated event, the share with an "
             "encounter, condition, lab, prescription or procedure before birth.", before_birth),
        Flag("event after death", "Of the patients with a date of death, the share with an event on a later "
             "day (a death certification encounter and the cause of death excepted).", after_death),
        Flag("alive at 100 or older", "Of the living patients with a birth date, the share aged 100 or more "
             "at the reference date (about 3 in 10,000 Americans).", living_centenarian),
        Flag("deceased without a date", "Of the deceased patients, the share recorded as deceased "
             "(deceasedBoolean) with no date of death.", undated_death),
    ]


def _drug_flags() -> list[Flag]:
    """Drugs and results without the diagnosis they imply."""
    return [
        Flag("antidiabetic without diabetes", "Of the patients prescribed metformin or insulin, the share with "
             "no diabetes diagnosis (metformin for prediabetes or PCOS is legitimate, but uncommon).",
             antidiabetic_without_diabetes),
        Flag("drug without an indication", "Of the patients prescribed warfarin, clopidogrel, digoxin, "
             "nitroglycerin or an asthma inhaler (albuterol, fluticasone), the share with one and none of the "
             "conditions it is prescribed for (atrial fibrillation or stroke; coronary disease or stroke; heart "
             "failure or atrial fibrillation; coronary disease; asthma or COPD).", drug_without_indication),
        Flag("HbA1c >= 6.5 % without diabetes", "Of the patients with an HbA1c, the share with one in the "
             "diabetic range (>= 6.5 %, the ADA diagnostic threshold) and no diabetes diagnosis.",
             diabetic_hba1c_without_diabetes),
        Flag("glucose >= 200 mg/dL without diabetes", "Of the patients with a blood glucose (LOINC 2339-0), the "
             "share with one of 200 mg/dL or more (diagnostic of diabetes with symptoms, ADA) and no diabetes "
             "diagnosis.", glucose_without_diabetes),
    ]


def _measurement_flags() -> list[Flag]:
    """Measurements: children's labs and heights, blood pressures, BMI."""
    return [
        Flag("child with cholesterol measured", "Of the patients under 12 at the reference date, the share with "
             "a total cholesterol (LOINC 2093-3); universal screening is at 9-11 years, earlier only if at risk.",
             child_cholesterol),
        Flag("pulse pressure < 20 mmHg", "Of the patients with a blood pressure, the share whose latest reading "
             "has systolic minus diastolic below 20 mmHg.", narrow_pulse_pressure),
        Flag("diastolic >= systolic", "Of the patients with a blood pressure, the share with any reading whose "
             "diastolic is at least the systolic (impossible).", inverted_pressure),
        Flag("child height below growth limit", "Of the patients aged 2-17 with a height measured at 2-17, the "
             "share whose latest is below 0.9 x the CDC 2000 3rd percentile for age and sex.", short_child),
        Flag("child height above growth limit", "Of the patients aged 2-17 with a height measured at 2-17, the "
             "share whose latest is above 1.1 x the CDC 2000 97th percentile for age and sex.", tall_child),
        Flag("HbA1c below 4 %", "Of the patients with an HbA1c, the share with one below 4 % (seen only with "
             "haemolysis or transfusion).", low_hba1c),
        Flag("cholesterol halves or doubles within 2 years", "Of the patients with two total cholesterol values "
             "2 years or less apart, the share where one of two consecutive values is over twice the other "
             "(a statin lowers it by a third to a half).", lab_swing(CHOLESTEROL, 2.0, 2)),
        Flag("BMI below 12 or above 70", "Of the patients with a BMI (LOINC 39156-5), the share with any value "
             "outside 12-70 kg/m2.", implausible_bmi),
        Flag("BMI disagrees with weight and height", "Of the patients with a BMI, weight and height on one day, "
             "the share where the BMI is more than 10 % off weight / height^2.", bmi_mismatch),
    ]


FLAGS: tuple[Flag, ...] = (*_onset_flags(), *_care_flags(), *_record_flags(), *_drug_flags(),
                           *_measurement_flags())
