"""transship: move container images where they are needed, and make them cheaper to move."""

__version__ = "0.1.0"
