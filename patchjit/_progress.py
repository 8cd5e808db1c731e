"""The progress bar of a long call: tqdm, with an honest estimate.

The first wave of a call includes numba's compilation (seconds, for a new callback,
dtype or window) and would make tqdm's first rate and time-left estimate wildly off.
The bar is therefore shown at once, labelled "compiling", and its clock starts after
the first wave: rates and estimates count only the work done after compilation.
"""

from __future__ import annotations

import time


class Progress:
    """A tqdm bar over ``total`` units whose clock starts at the first update.

    Parameters
    ----------
    total : int
        Number of units (patches) of the call.
    unit : str
        tqdm's unit name.

    Examples
    --------
    >>> bar = Progress(10, disable=True)
    >>> bar.update(4); bar.update(6); bar.n
    10
    >>> bar.close()
    """

    def __init__(self, total: int, unit: str = "patch", disable: bool = False):
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a core dependency
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        self.total = int(total)
        self.n = 0
        self._bar = tqdm(
            total=self.total, unit=unit, unit_scale=True, desc="compiling", disable=disable
        )
        self._started = False

    def update(self, k: int) -> None:
        """Count ``k`` more units done."""
        k = int(k)
        self.n += k
        bar = self._bar
        if not self._started:
            # restart the clock after the first wave (which compiled the kernels)
            self._started = True
            bar.n = bar.initial = bar.last_print_n = self.n
            bar.start_t = bar.last_print_t = time.time()
            bar.set_description_str("")
            bar.refresh()
        else:
            bar.update(k)

    def close(self) -> None:
        """Close the bar."""
        self._bar.close()
