"""Patient histories: bounding each patient's events (:mod:`.bound`), writing coherent, dated
FHIR histories from synthetic timeline cells (:mod:`.write`), and reading an export
(:mod:`.export`) into one chart per patient (:mod:`.chart`) that a clinician's red flags
(:mod:`.redflag`) are counted on, real and synthetic alike."""
