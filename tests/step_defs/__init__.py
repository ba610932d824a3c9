"""Step definitions for the Gherkin features in ``features/``."""
