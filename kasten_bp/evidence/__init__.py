"""Evidence that a backup was taken, restored and proven: one report assembled from what
the catalog recorded (nothing unmeasured is asserted), signed with ECDSA P-256."""
