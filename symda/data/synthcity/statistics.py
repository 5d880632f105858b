"""Simple image statistics that tell a render from a photograph, to compare SynthCity with a real frame.

All take (H, W, 3) uint8 RGB images and return plain floats (numpy only).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def luminance(image: np.ndarray) -> np.ndarray:
    """(H, W) float64 luma in [0, 1]."""
    return (image.astype(np.float64) / 255.0) @ _LUMA


def mean_saturation(image: np.ndarray) -> float:
    """Mean HSV saturation in [0, 1]."""
    hsv = np.asarray(Image.fromarray(image, mode="RGB").convert("HSV"), dtype=np.float64)
    return float(hsv[..., 1].mean() / 255.0)


def luminance_histogram(images: list[np.ndarray], bins: int = 32) -> np.ndarray:
    """Normalised histogram of the luma of all `images` pooled, (bins,)."""
    counts = sum(np.histogram(luminance(im), bins=bins, range=(0.0, 1.0))[0] for im in images)
    return counts / max(counts.sum(), 1)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance of two normalised histograms, in [0, 1]."""
    return float(0.5 * np.abs(a - b).sum())


def spectrum_slope(image: np.ndarray) -> float:
    """Slope of log power against log spatial frequency, radially averaged (natural images: about -2;
    flat renders are steeper, noise is flatter). Windowed, mean removed, frequencies 2..N/4 cycles."""
    y = luminance(image)
    y = (y - y.mean()) * np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    power = np.abs(np.fft.fftshift(np.fft.fft2(y))) ** 2
    h, w = y.shape
    fy, fx = np.meshgrid(np.arange(h) - h // 2, (np.arange(w) - w // 2) * h / w, indexing="ij")
    radius = np.hypot(fy, fx).round().astype(int)
    radii = np.arange(2, h // 4)
    means = np.array([power[radius == r].mean() for r in radii])
    return float(np.polyfit(np.log(radii), np.log(means + 1e-12), 1)[0])


def edge_density(image: np.ndarray, threshold: float = 0.08) -> float:
    """Fraction of pixels whose luma gradient (central differences) exceeds `threshold` per pixel."""
    y = luminance(image)
    gy, gx = np.gradient(y)
    return float((np.hypot(gx, gy) > threshold).mean())


def image_statistics(images: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    """Means over `images` of saturation, spectrum slope and edge density, and the luminance
    histogram distance of `images` to `reference` (e.g. real frames)."""
    return {
        "mean_saturation": float(np.mean([mean_saturation(im) for im in images])),
        "luminance_hist_distance": histogram_distance(
            luminance_histogram(images), luminance_histogram(reference)
        ),
        "spectrum_slope": float(np.mean([spectrum_slope(im) for im in images])),
        "edge_density": float(np.mean([edge_density(im) for im in images])),
    }
