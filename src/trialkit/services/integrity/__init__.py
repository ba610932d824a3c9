"""The record kept whole: the audit trail and its review, audited refusals, audit and list
verification, signed checkpoints, backups."""
