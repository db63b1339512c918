"""vitbench: reproducibility benchmarks for the claims of the ViT paper (Dosovitskiy et al., 2021)."""

__version__ = "0.1.0"
