"""zoo's version, in the core so that every layer can record it without importing the package face."""

__version__ = "0.1.0"
