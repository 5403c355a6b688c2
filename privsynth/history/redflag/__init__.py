"""Red flags: a clinician's face-validity check of FHIR R4 patient records.

Each flag is a share among the patients its premise concerns: of the patients with heart
failure, how many have it from childhood; of the patients with an admission, how many have
one with no reason and nothing recorded; of the children, how many had a cholesterol
measured; and so on. The same functions run on a real FHIR export and on a synthetic one, so
the two can be compared side by side (:func:`compare`; ``benchmarks/believability.py``; the
face-validity audit of a release). A flag is not an error in itself (real records have
early-onset disease, repeat colonoscopies after a polyp, metformin for prediabetes); a
synthetic rate far above the real one is what betrays a generator.

The checks are pure functions ``(resources, reference_date) -> (applies, flagged)`` reading
the patient's :class:`~privsynth.history.chart.Chart` (parsed once per patient): they are in
:mod:`.check`, the flags that name them in :mod:`.flag`, and the summaries and the
real-against-synthetic comparison in :mod:`.summary`.
"""

from privsynth.history.redflag.check import (
    ANTIDIABETIC_RXNORM,
    ANTIDIABETIC_WORDS,
    CDC_STATURE_P3,
    CDC_STATURE_P97,
    HEIGHT_MARGIN,
    INDICATED_DRUGS,
    TALL_MARGIN,
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
    height_limit,
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
from privsynth.history.redflag.flag import (
    FLAGS,
    UNCODED_ORDER,
    Flag,
)
from privsynth.history.redflag.summary import (
    MISS_FLOOR,
    Comparison,
    Distribution,
    FlagCount,
    Summary,
    compare,
    is_miss,
    max_date,
    summarise,
)

__all__ = ["ANTIDIABETIC_RXNORM", "ANTIDIABETIC_WORDS", "CDC_STATURE_P3", "CDC_STATURE_P97", "Check", "Comparison",
           "Distribution", "FLAGS", "Flag", "FlagCount", "HEIGHT_MARGIN", "INDICATED_DRUGS", "MISS_FLOOR", "Summary",
           "TALL_MARGIN", "UNCODED_ORDER", "admission_without_reason", "after_death", "antidiabetic_without_diabetes",
           "before_birth", "bmi_mismatch", "child_cholesterol", "compare", "diabetic_hba1c_without_diabetes",
           "drug_without_indication", "early_hba1c", "empty_stay", "frequent_admissions", "glucose_without_diabetes",
           "height_limit", "implausible_bmi", "inverted_pressure", "is_miss", "lab_swing", "living_centenarian",
           "low_hba1c", "max_date", "narrow_pulse_pressure", "odd_mammography", "onset_after", "onset_before",
           "outside_encounters", "repeat_colonoscopy", "same_day", "short_child", "summarise", "tall_child",
           "uncoded_order", "undated_death", "young_colonoscopy"]
