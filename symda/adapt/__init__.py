"""Segmentation training: the one loop over loss terms (loop.py) for source-only training, adaptation
and self-training; what a term sees of a step (step.py); building segmenters from config (networks.py)."""
