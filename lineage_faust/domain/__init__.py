"""The domain, pure: OpenLineage events, identity, the run-state fold, alert rules, triage."""
