"""Auditing where a model fails: probes and transformations, measures, model runs, the report."""
