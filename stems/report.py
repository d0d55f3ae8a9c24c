"""Evaluation reports: a markdown table, a bar chart of per-stem SDR against the baselines, and a
picture of one track's mix spectrogram with its predicted and oracle masks, and one of its true
and separated stems."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def markdown_table(summary: dict[str, dict[str, float]], names: tuple[str, ...], title: str) -> str:
    """summary: {system: {stem: SDR, "mean": SDR}} -> a markdown table, one row per system."""
    columns = (*names, "mean")
    lines = [f"**{title}**", "", "| system | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for system, row in summary.items():
        lines.append(f"| {system} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(summary: dict[str, dict[str, float]], names: tuple[str, ...], path: Path, title: str) -> None:
    """Grouped bars: one group per stem (and the mean), one bar per system."""
    plt = _pyplot()
    columns = (*names, "mean")
    systems = list(summary)
    width = 0.8 / max(1, len(systems))
    figure, axis = plt.subplots(figsize=(2 + 1.6 * len(columns), 4.5))
    for i, system in enumerate(systems):
        values = [summary[system][c] for c in columns]
        axis.bar(np.arange(len(columns)) + (i - (len(systems) - 1) / 2) * width, values, width, label=system)
    axis.set_xticks(np.arange(len(columns)), columns)
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_ylabel("SDR (dB)")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _mix_and_pairs(mix_mag: np.ndarray, rows: list[tuple[tuple[np.ndarray, str, dict], ...]], sample_rate: int,
                   hop_length: int, path: Path, title: str) -> None:
    """A figure of two columns: the mix log-spectrogram across the top row, then one row per
    stem of two (image, title, imshow options) panels."""
    plt = _pyplot()
    bins, frames = mix_mag.shape
    extent = (0, frames * hop_length / sample_rate, 0, sample_rate / 2 / 1000)
    figure, axes = plt.subplots(1 + len(rows), 2, figsize=(12, 2.2 * (1 + len(rows))), sharex=True, sharey=True)
    db = 20 * np.log10(mix_mag + 1e-6)
    for axis in axes[0]:
        axis.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=db.max() - 80, vmax=db.max(), cmap="magma")
        axis.set_title("mix (dB)", fontsize=9)
    for row, panels in enumerate(rows, start=1):
        for column, (image, label, options) in enumerate(panels):
            axes[row, column].imshow(image, origin="lower", aspect="auto", extent=extent, **options)
            axes[row, column].set_title(label, fontsize=9)
    for axis in axes[:, 0]:
        axis.set_ylabel("kHz")
    for axis in axes[-1]:
        axis.set_xlabel("seconds")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def mask_plot(mix_mag: np.ndarray, predicted: np.ndarray, oracle: np.ndarray, names: tuple[str, ...],
              sample_rate: int, hop_length: int, path: Path, title: str) -> None:
    """Mix log-spectrogram on top, then each stem's predicted mask beside its oracle mask.

    Args:
        mix_mag: (bins, frames) magnitudes (one channel).
        predicted, oracle: (sources, bins, frames) masks in [0, 1].
    """
    style = dict(vmin=0, vmax=1, cmap="gray_r")
    rows = [((predicted[i], f"{name}: predicted mask", style), (oracle[i], f"{name}: oracle mask", style))
            for i, name in enumerate(names)]
    _mix_and_pairs(mix_mag, rows, sample_rate, hop_length, path, title)


def stem_spectrogram_plot(mix_mag: np.ndarray, true_mags: np.ndarray, estimated_mags: np.ndarray,
                          names: tuple[str, ...], sample_rate: int, hop_length: int, path: Path, title: str) -> None:
    """Mix log-spectrogram on top, then each stem's true spectrogram beside the spectrogram of the
    stem the model rendered, on the mix's dB scale.

    Args:
        mix_mag: (bins, frames) magnitudes (one channel).
        true_mags, estimated_mags: (sources, bins, frames) magnitudes.
    """
    top = 20 * np.log10(mix_mag.max() + 1e-6)
    style = dict(vmin=top - 80, vmax=top, cmap="magma")
    rows = [((20 * np.log10(true_mags[i] + 1e-6), f"{name}: true stem", style),
             (20 * np.log10(estimated_mags[i] + 1e-6), f"{name}: separated by the model", style))
            for i, name in enumerate(names)]
    _mix_and_pairs(mix_mag, rows, sample_rate, hop_length, path, title)


def training_curves(log_path: Path, path: Path) -> None:
    """PNG of a run's log.jsonl: training loss (and its running mean) and validation SDR by step."""
    import json

    plt = _pyplot()
    steps, losses, checks = [], [], []
    for line in Path(log_path).read_text().splitlines():
        entry = json.loads(line)
        if "loss" in entry:
            steps.append(entry["step"])
            losses.append(entry["loss"])
        elif "validation" in entry:
            checks.append((entry["step"], {k: v["mean"] for k, v in entry["validation"].items() if isinstance(v, dict)}))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(steps, losses, alpha=0.3, label="loss")
    if len(losses) >= 20:
        window = max(10, len(losses) // 50)
        left.plot(steps[window - 1:], np.convolve(losses, np.ones(window) / window, mode="valid"), label=f"mean of {window}")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.legend()
    for kind in (checks[0][1] if checks else {}):
        right.plot([c[0] for c in checks], [c[1][kind] for c in checks], marker="o", label=f"{kind} masks")
    right.set_xlabel("step")
    right.set_ylabel("validation SDR, mean over stems (dB)")
    if checks:
        right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
