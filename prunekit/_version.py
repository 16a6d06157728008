"""The package version (its own module so that any module can read it without importing the
whole package; setup.cfg reads it from here)."""
__version__ = "0.3.0"
