"""Registries of named components (densities, boundaries, schemes, steppers)."""
from __future__ import annotations


class Registry(dict):
    """name -> class; `register(name)` is a class decorator that also stores the name on the
    class under `attribute` (e.g. `kind` or `name`)."""

    def __init__(self, attribute: str):
        super().__init__()
        self.attribute = attribute

    def register(self, name: str):
        def deco(cls):
            setattr(cls, self.attribute, name)
            self[name] = cls
            return cls
        return deco
