"""What a long first run says while it works: French lines on stderr, and a progress bar.

The engine calls `stage` before each step that can take a while (the model's conversion, the
question encoder's ONNX export and 8-bit weights, reading the corpus, embedding, writing the index)
and `bar` around embedding. Nothing is shown unless a face asked for it (`report()`: `qa index build`,
and `qa serve`'s first build, which runs it), so the library and the tests stay quiet.
"""

from __future__ import annotations

import sys
from typing import Any

_on = {"stages": False}


def report(on: bool = True) -> None:
    """Show the stage lines on stderr (or stop showing them)."""
    _on["stages"] = on


def stage(message: str) -> None:
    """One French line on stderr, when reports are on."""
    if _on["stages"]:
        print(message, file=sys.stderr, flush=True)


def bar(total: int, unit: str, *, show: bool) -> Any:
    """A tqdm bar of `total` `unit` on stderr, in French (count, elapsed time, time left), or None when
    not `show`n (`build_index(show_progress=…)`: the CLI shows it on a terminal). The caller updates and
    closes it."""
    if not show:
        return None
    from tqdm import tqdm  # lazy: only builds show a bar

    form = "{percentage:3.0f} % |{bar}| {n_fmt}/{total_fmt}{unit} · écoulé {elapsed} · reste {remaining}"
    return tqdm(total=total, file=sys.stderr, unit=f" {unit}", dynamic_ncols=True, bar_format=form)
