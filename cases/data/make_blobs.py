"""Writes the two 32x32 8-bit grayscale PNGs of cases/transport_images.toml (run from anywhere).

Intensity = 0.25 + Gaussian blobs, scaled to [0, 1] before 8-bit quantisation: a positive
background keeps log q finite, as the Monge-Ampere equation needs q > 0 on Y. Written with
Pillow (matplotlib's image backend) in mode "L", read back by matplotlib's image reader.
"""
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
n = 32
y, x = np.mgrid[0:n, 0:n] / (n - 1)


def blobs(centres):
    img = 0.25 + sum(w * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) for cx, cy, s, w in centres)
    return img / img.max()




def save(name, img):
    # row 0 of an image is its top: flip so that the bottom row is the lowest x1
    Image.fromarray(np.round(255 * img[::-1]).astype(np.uint8), mode="L").save(HERE / name)


save("blobs_source.png", blobs([(0.3, 0.35, 0.12, 1.0), (0.7, 0.7, 0.1, 0.6)]))
save("blobs_target.png", blobs([(0.5, 0.5, 0.15, 0.8), (0.2, 0.8, 0.08, 0.7), (0.8, 0.2, 0.08, 0.7)]))
