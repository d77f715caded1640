"""Logical restore: records of a backup (or any cluster) replayed into any target cluster,
with topic mapping, offset ranges, a time window and original-offset headers; preflight
before any write, a resumable report in the catalog, and a content proof after."""
