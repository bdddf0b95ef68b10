"""lineage-faust: live run-operations data from OpenLineage events."""

__version__ = "0.3.0"
