"""Retention: policies saying how long finished records are kept, and the pruner that
deletes what is older, in small batches (docs/retention.md)."""
