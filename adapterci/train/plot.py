"""The loss-curve PNG for reports."""

from __future__ import annotations

from pathlib import Path


def plot_losses(history: dict[str, list[list[float]]], path: Path) -> None:
    """Train and validation loss against the optimizer step (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, label in (("train", "train loss"), ("valid", "validation loss")):
        if history.get(key):
            steps, losses = zip(*history[key])
            ax.plot(steps, losses, marker="." if key == "valid" else None, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
