"""Node-centred Cartesian grid in 1, 2 or 3 dimensions.

Non-periodic axes hold `n` nodes including both boundary nodes, h = (upper - lower)/(n - 1).
Periodic axes hold `n` distinct nodes, h = (upper - lower)/n; the node at `upper` is the
node at `lower`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]
    periodic: bool = False

    def __post_init__(self):
        object.__setattr__(self, "lower", tuple(float(v) for v in self.lower))
        object.__setattr__(self, "upper", tuple(float(v) for v in self.upper))
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        div = [n if self.periodic else n - 1 for n in self.shape]
        return tuple((u - l) / m for l, u, m in zip(self.lower, self.upper, div))

    @property
    def length(self) -> np.ndarray:
        return np.asarray(self.upper) - np.asarray(self.lower)

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def axis(self, k: int) -> np.ndarray:
        return self.lower[k] + self.spacing[k] * np.arange(self.shape[k])

    def axes(self) -> list[np.ndarray]:
        return [self.axis(k) for k in range(self.dim)]

    def points(self) -> np.ndarray:
        """Node coordinates, shape (*shape, dim)."""
        mesh = np.meshgrid(*self.axes(), indexing="ij")
        return np.stack(mesh, axis=-1)

    def padded_points(self, g: int) -> np.ndarray:
        """Coordinates of the grid extended by `g` ghost nodes per side, (*shape+2g, dim)."""
        axes = [self.lower[k] + self.spacing[k] * np.arange(-g, self.shape[k] + g)
                for k in range(self.dim)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)

    def interior_mask(self) -> np.ndarray:
        """Nodes where errors are measured: all nodes if periodic, else non-boundary nodes."""
        mask = np.ones(self.shape, dtype=bool)
        if self.periodic:
            return mask
        for k in range(self.dim):
            idx = [slice(None)] * self.dim
            idx[k] = 0
            mask[tuple(idx)] = False
            idx[k] = -1
            mask[tuple(idx)] = False
        return mask

    def state(self) -> dict:
        return {"lower": list(self.lower), "upper": list(self.upper), "shape": list(self.shape),
                "periodic": self.periodic, "spacing": list(self.spacing), "dim": self.dim}
