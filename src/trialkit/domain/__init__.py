"""Pure trial rules: no database, no screen."""
