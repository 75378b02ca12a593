"""umlpy: a User-Mode-Linux style sandbox with a guest kernel in Python."""
__version__ = "0.1.0"
