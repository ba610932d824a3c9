"""What leaves the database: the analysis files and their dictionary, the status report, and the
sealed procedure and randomization report after the lock."""
