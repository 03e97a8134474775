"""onepunch: deep line-art and manga colorization."""

__version__ = "0.1.0"
__all__ = ["PageColorizer", "Colorizer", "__version__"]


def __getattr__(name):
    # Lazy, so `import onepunch` (and the CLI's start-up) does not pay for torch.
    if name in ("PageColorizer", "Colorizer"):  # Colorizer: the name before 0.2, kept for existing scripts
        from onepunch.inference import PageColorizer
        return PageColorizer
    raise AttributeError(f"module 'onepunch' has no attribute {name!r}")
