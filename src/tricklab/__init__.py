"""tricklab: study the tricks that make deep networks train."""

__version__ = "0.1.0"
