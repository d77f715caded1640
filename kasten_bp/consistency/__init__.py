"""The proof that a backup is a consistent cut of the primary: catch-up, heads, offset
translation by content, verify.

`core` judges (pure); the modules beside it read the clusters and hand `core` what they
read: `scope` (which partitions), `translate` (where records live on the primary),
`capture` (the manifest's heads), `catch_up` (the quiesce proof), `verify` (a restore).
"""
