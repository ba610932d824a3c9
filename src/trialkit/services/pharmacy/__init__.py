"""The research pharmacy: the dispense queue, the checks before an action, opening envelopes,
preparations, labels and emergency unblinding."""
