"""The package version, in one place (read by the package face and the compile cache)."""

__version__ = "0.2.0"
