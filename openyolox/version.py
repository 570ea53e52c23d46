"""The package version (one definition; the root package and exported files read it here)."""
__version__ = "0.2.0"
