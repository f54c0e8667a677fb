"""labelwatch: a streaming quality monitor for human data labeling."""

__version__ = "0.1.0"
