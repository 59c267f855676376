"""The audit's pure rules: the audit event every fold reads, and the hash chains and checkpoints."""
