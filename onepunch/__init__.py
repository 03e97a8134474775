"""onepunch: deep line-art and manga colorization."""

__version__ = "0.1.0"
__all__ = ["Colorizer", "__version__"]


def __getattr__(name):
    # Lazy, so `import onepunch` (and the CLI's start-up) does not pay for torch.
    if name == "Colorizer":
        from onepunch.colorize import Colorizer
        return Colorizer
    raise AttributeError(f"module 'onepunch' has no attribute {name!r}")
