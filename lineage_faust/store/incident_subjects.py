"""The incident each subject (a job or dataset that failed) was last saved with, read from
any store's ``IncidentBook``: what the lineage graph and the freshness sweep ask."""

from __future__ import annotations

from collections.abc import Sequence

from lineage_faust.domain.incidents import Incident
from lineage_faust.store.interfaces import IncidentBook


async def incidents_by_subject(store: IncidentBook, subjects: Sequence[str]) -> dict[str, Incident]:
    found = await store.incidents_of_subjects(subjects)
    kept = await store.get_incidents(list(set(found.values())))
    return {subject: kept[i] for subject, i in found.items() if i in kept}
