"""Exports of a backup's consistent cut to object storage: envelope files in open formats
(JSON Lines, Avro, Parquet), an index with checksums, resumable uploads, and the check that
reads them back."""
