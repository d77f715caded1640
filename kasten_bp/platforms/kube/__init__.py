"""What the Kubernetes platforms share, one job a module: the resource catalogue
(`resources`), the REST helper with its error translation (`api`), exec in pods
(`podexec`), the Lease lock (`lease`), CSI snapshots (`snapshots`), PVC restore (`restore`)
and the platform base built from them (`platform`). The `kubernetes` client is imported
here only."""
