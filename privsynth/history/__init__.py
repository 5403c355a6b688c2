"""Patient histories: bounding each patient's events (:mod:`.bound`) and writing coherent,
dated FHIR histories from synthetic timeline cells (:mod:`.write`)."""
