"""dizuo 底座: an open, self-hostable AI foundation platform for a city or region."""

__all__ = ["__version__"]

__version__ = "0.1.0"
