"""Segmentation training loops: supervised (source-only, oracle) now; adversarial and self-training next."""
