"""Enrolment: screening, consent, withdrawal and randomization, the sealed allocation lists
randomization draws from, and the design report read before sealing."""
