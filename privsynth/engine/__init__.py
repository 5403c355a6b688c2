"""Engines that run the patient-sharded steps (ingest, counting): DuckDB here, Spark past one machine."""
