"""The package version (one place: minicnn.__version__, saved files and benchmark records read it)."""
__version__ = "0.1.0"
