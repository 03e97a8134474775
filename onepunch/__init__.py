"""onepunch: deep line-art and manga colorization."""

__version__ = "0.1.0"
