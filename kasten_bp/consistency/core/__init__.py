"""The pure core of the proof: matching records by content, classifying partitions, the
report, the catch-up comparison. No I/O: everything it judges is read by its callers."""
