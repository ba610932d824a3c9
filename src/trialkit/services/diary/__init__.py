"""The headache diary: days recorded and imported, what the audit trail keeps of them, and the
outcomes derived from them."""
