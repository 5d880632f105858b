"""Segmentation training: one loop (loop.py) for source-only, adversarial adaptation and self-training."""
