"""Modal dialogs (``ModalScreen[T]`` returning a typed result), e.g. confirmations that later
role screens ask before an irreversible step."""
