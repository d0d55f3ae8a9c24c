"""`stems info`: what a model is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import StemsError
from .common import app, fail as _fail


ROSTER = ("default", "fast", "quality", "lowlatency")  # the order `stems info --list` shows them in


@app.command(epilog="Example: stems info --list   |   stems info quality   |   stems info checkpoints/default-ca8f1104.onnx")
def info(
    checkpoint: Optional[str] = typer.Argument(None, help="Registry name or model file (default: the shipped model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole card as JSON."),
    as_list: bool = typer.Option(False, "--list", help="List the shipped models: what each is for, valid SDR, speed, latency, size, data."),
) -> None:
    """Show what a model is: stems, STFT settings, size, context, training data, metrics, sha256."""
    from ..engine import load_engines, window_frames

    if as_list:
        _list_models()
        return
    try:
        engines, card = load_engines(checkpoint)
    except StemsError as error:
        _fail(str(error))
    if as_json:
        print(json.dumps(card, indent=2))
        return
    table = Table(title=f"model {Path(card['path']).name}", show_header=False)
    ms = 1000 / engines[0].stft.sample_rate
    trainings = _all_trainings(engines)
    if len(engines) > 1:
        kind = f"an ensemble of {len(engines)} models, each with its own STFT, stems averaged"
        members = [f"{Path(e.card['path']).name}: {_kind(e.card)}, {_stft(e)}" for e in engines]
    else:
        kind, members = _kind(card), []
    widest = max(((window_frames(e) - 1) * e.stft.hop_length + e.stft.n_fft) * ms for e in engines)
    rows = {
        "model": kind,
        **{f"member {i}": member for i, member in enumerate(members, 1)},
        "stems": ", ".join(engines[0].sources),
        "STFT": "; ".join(dict.fromkeys(_stft(e) for e in engines)),
        "parameters": f"{card['parameters']:,}",
        "context": "; ".join(dict.fromkeys(f"{window_frames(e)} frames" for e in engines)) + f" = {widest:.0f} ms of audio",
        "latency": f"{_latency_ms(engines, card):.0f} ms algorithmic "
                   f"({max(e.lookahead for e in engines)} look-ahead frames + STFT window)",
        "default mask": card.get("default_mask", "soft"),
        "training data": "; ".join(dict.fromkeys(_with_licence(d, t) for t in trainings for d in t.get("data", []))) or "-",
        "licences": _licences(trainings),
        "training steps": " + ".join(str(t.get("step", "-")) for t in trainings),
        "sha256": card["sha256"],
    }
    for key, value in rows.items():
        table.add_row(key, value)
    metrics = card.get("metrics", {})
    for system, row in metrics.get("musdb_valid_bsseval_v4_sdr", {}).items():
        table.add_row(f"valid SDR: {system}", ", ".join(f"{k} {v:.2f}" for k, v in row.items()) + " dB")
    if "musdb_valid_bsseval_v4_sdr" not in metrics and metrics:
        table.add_row("metrics", json.dumps(metrics)[:600])
    Console().print(table)


def _list_models() -> None:
    """One row per registered model, the roster first: what it is for, its card's validation SDR
    (four stems; vocals and no_vocals of two, with its default mask), the speed the registry
    records for it, latency, parameters and the licences of its training data."""
    from ..engine import load_engines
    from ..registry import registry

    shipped = registry()
    names = [*(n for n in ROSTER if n in shipped["models"]), *sorted(set(shipped["models"]) - set(ROSTER))]
    if not names:
        _fail("no shipped model is registered")
    table = Table(title="shipped models (valid: BSSEval v4 SDR on the 14 MUSDB18 valid previews, dB)")
    for column in ("model", "for", "valid, four stems", "valid, vocals / no_vocals", "speed, 3-min song",
                   "latency", "parameters", "training data licences"):
        table.add_column(column, justify="right" if column in ("parameters", "latency") else "left")
    for name in names:
        try:
            engines, card = load_engines(name)
        except StemsError as error:
            _fail(str(error))
        about = shipped["about"].get(name, {})
        metrics, mask = card.get("metrics", {}), card.get("default_mask", "soft")
        four = metrics.get("musdb_valid_bsseval_v4_sdr", {}).get(f"stems {mask}", {})
        two = metrics.get("musdb_valid_two_stems_sdr", {}).get("summary", {}).get(f"stems {mask}", {})
        speed = about.get("speed", {})
        table.add_row(name, about.get("for", "-"),
                      f"{four['mean']:.2f}" if four else "-",
                      f"{two['vocals']:.2f} / {two['no_vocals']:.2f}" if two else "-",
                      f"{speed['x_real_time']:.0f}x real time, {speed['x_open_unmix_network']:.1f}x Open-Unmix's network"
                      if speed else "not measured",
                      f"{_latency_ms(engines, card):.0f} ms", f"{card['parameters']:,}", _licences(_all_trainings(engines)))
    Console().print(table)
    measured = {about["speed"]["command"] for about in shipped["about"].values() if "speed" in about}
    for command in sorted(measured):
        print(f"speed measured by: {command}")


def _latency_ms(engines: list, card: dict) -> float:
    from ..separator import Separator
    from ..stream import latency_samples

    return latency_samples(Separator(engines, card=card)) * 1000 / engines[0].stft.sample_rate


def _all_trainings(engines: list) -> list[dict]:
    """Every training stage of every network of a model (an ensemble's members, a bag's)."""
    return [stage for engine in engines for training in _trainings(engine.card) for stage in _stages(training)]


def _licences(trainings: list[dict]) -> str:
    return "; ".join(dict.fromkeys(v for t in trainings for v in t.get("licences", {}).values())) or "not recorded"


def _kind(card: dict) -> str:
    members = card.get("training", {}).get("bag_of")
    return f"a bag of {len(members)} MaskNets, masks averaged" if members else "MaskNet"


def _trainings(card: dict) -> list[dict]:
    """The trainings of a model's networks (one, or each of a bag's)."""
    members = card.get("training", {}).get("bag_of")
    return [member["training"] for member in members] if members else [card.get("training", {})]


def _stft(engine) -> str:
    stft = engine.stft
    return f"n_fft {stft.n_fft}, hop_length {stft.hop_length}, {stft.sample_rate} Hz"


def _with_licence(source: str, training: dict) -> str:
    """A training source ("folder" or "folder (musdb train split)") with its licence appended, or
    alone where the card names none."""
    licences = training.get("licences", {})
    licence = next((licences[folder] for folder in licences if source == folder or source.startswith(folder + " (")), None)
    return f"{source}: {licence}" if licence else source


def _stages(training: dict) -> list[dict]:
    """A training and the ones its `train.init` went through, first stage first."""
    return [*(_stages(training["init"]) if training.get("init") else []), training]
