"""The terminal UI (Textual): screens per role journey over the same services the CLI uses.

Kept light on import: ``trialkit.tui.app`` pulls in Textual but no database code, so the
sign-in screen appears before anything touches the database.
"""
