"""The Airflow Assets the moon DAGs exchange. One definition, imported by the producer and the consumer DAG.

`MOON_SHARDS` gets an event each time moon_augment finishes a run: the event's extra holds the run folder's
URI (`run_uri`), its run id and row counts. moon_train is scheduled on it.
"""
from __future__ import annotations

from airflow.sdk import Asset

MOON_SHARDS = Asset(name="moon_augment_shards", uri="moon://augment/shards", group="moon")
