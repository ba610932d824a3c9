"""Modal dialogs (``ModalScreen[T]`` returning a typed result): confirmations before an
irreversible step, and the small forms for consent, withdrawal, sealing and extending."""
