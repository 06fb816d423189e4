"""postmortem-pipeline: incident sources -> one timeline -> a grounded, blameless postmortem draft."""

__version__ = "0.1.0"
