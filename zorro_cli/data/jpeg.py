"""JPEG frames of the cache: encode when writing, decode when reading (libjpeg-turbo via simplejpeg)."""

from __future__ import annotations

import numpy as np
import simplejpeg


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes (4:2:0, baseline) of an RGB uint8 ``[H, W, 3]`` image; deterministic.

    simplejpeg calls libjpeg-turbo directly: about twice as fast as going through Pillow, which
    matters because every kept frame of a dataset is encoded once."""
    return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=quality, colorspace="RGB",
                                  colorsubsampling="420")


def decode_jpeg(data: bytes | np.ndarray) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of JPEG bytes (libjpeg-turbo through simplejpeg)."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else data
    return simplejpeg.decode_jpeg(raw, colorspace="RGB")
