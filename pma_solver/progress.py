"""Progress display: a tqdm bar on an interactive terminal, silence otherwise."""
from __future__ import annotations

import sys


class Progress:
    def __init__(self, total: float, enabled: bool, desc: str):
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="t", mininterval=1.0, leave=False,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| t={n:.4g}/{total:.4g} "
                                       "[{elapsed}<{remaining}{postfix}]")
        self.last = 0.0

    def update(self, t: float, **postfix) -> None:
        if self.bar is None:
            return
        self.bar.update(t - self.last)
        self.last = t
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
