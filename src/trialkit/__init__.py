"""trialkit: sealed, stratified randomization and outcome capture for blinded drug trials."""

__version__ = "0.1.0"
