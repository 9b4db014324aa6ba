"""Use cases and workers: ingestion, the pipeline, timers. They use ports, never drivers."""
