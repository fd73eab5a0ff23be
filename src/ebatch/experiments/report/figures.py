"""matplotlib for the report's figures: pyplot on the Agg backend (no display needed) and one way to save."""

from __future__ import annotations

from pathlib import Path

__all__ = ["pyplot", "save"]


def pyplot():
    """matplotlib's pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> Path:
    """Lay out, write (110 dpi) and close ``fig``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
