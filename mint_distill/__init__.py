"""mint-distill: narrative-driven recommenders from review datasets (the Mint method)."""

__version__ = "0.1.0"
