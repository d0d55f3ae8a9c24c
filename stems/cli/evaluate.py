"""`stems evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import StemsError
from ..masks import GATE_DB, MASK_KINDS
from .common import app, console, fail as _fail, needs_extras


@app.command(epilog="Example: stems evaluate --musdb ../shared/data/musdb18-7s --split valid --jobs 2 --markdown valid.md --chart valid.png")
@needs_extras("evaluate", "museval")
def evaluate(
    musdb_root: Optional[Path] = typer.Option(None, "--musdb", help="MUSDB18 root (train/ and test/ folders of .stem.mp4)."),
    subset: str = typer.Option("train", "--subset", help="MUSDB subset: train or test."),
    split: Optional[str] = typer.Option("valid", "--split", help="With --subset train: train or valid."),
    is_wav: bool = typer.Option(False, "--is-wav", help="MUSDB18 in its wav layout."),
    stems_dir: Optional[Path] = typer.Option(None, "--stems-dir", help="References as <DIR>/<song>/<stem>.*: the model's stems, "
                                             "or with no model scored those the folder holds."),
    estimates: Optional[Path] = typer.Option(None, "--estimates", help="Also score another system's outputs <DIR>/<track>/<stem>.wav."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", "--model", help="Registry name (default, fast, quality, lowlatency) or checkpoint file (default: the shipped model)."),
    masks: Optional[str] = typer.Option(None, "--mask", help="Mask kinds to score for the model, comma-separated (default soft,binary; none when only a non-empty --oracle is given); '' for none."),
    oracles: Optional[str] = typer.Option(None, "--oracle", help="Baselines, comma-separated: mix, ibm, argmax, irm (default all); '' for none."),
    shifts: int = typer.Option(1, "--shifts", help="Score the model with N shifted separations averaged (as stems separate --shifts)."),
    gate_db: float = typer.Option(GATE_DB, "--gate-db", help="The silence gate's threshold in dB, as stems separate --gate-db; -inf: off."),
    jobs: int = typer.Option(1, "--jobs", help="Tracks scored in parallel processes."),
    cache_dir: Path = typer.Option(Path(".cache/stems-eval"), "--cache", help="Per-track score cache: an interrupted run resumes."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary and every track's scores as JSON."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Write the summary tables (SDR and uSDR) as markdown."),
    chart: Optional[Path] = typer.Option(None, "--chart", help="Write a PNG bar chart of per-stem SDR."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Track name: write <TRACK>.masks.png (mix, predicted and oracle masks)."),
    two_stems: str = typer.Option("vocals", "--two-stems", help="Also score every system as STEM / no_STEM (as stems separate "
                                  "--two-stems writes them: karaoke and acapella); '' for the four-stem table alone."),
    runtime: Optional[str] = typer.Option(None, "--runtime", help="What runs a registered model: onnx (default) or torch."),
) -> None:
    """Per-stem SDR (BSSEval v4 over 1-s frames; median over frames, then over tracks, as SiSEC
    2018) and uSDR (one SDR over the whole track; mean over tracks, as SDX23 ranks) of the model,
    other systems' estimates and oracle baselines, on the same tracks."""
    from rich.progress import MofNCompleteColumn

    from ..config import STFTConfig
    from ..evaluate import (ORACLES, estimates_key, estimates_reader, evaluate_systems, oracle_estimates,
                            reference_sources, reference_tracks, summary_table, two_stem_references, two_stem_system)
    from ..report import bar_chart, markdown_table
    from ..separator import Separator

    if masks is None:
        masks = "" if oracles and estimates is None else "soft,binary"
    mask_kinds = [m for m in masks.split(",") if m]
    oracle_kinds = [o for o in (",".join(ORACLES) if oracles is None else oracles).split(",") if o]
    for kind in mask_kinds:
        if kind not in MASK_KINDS:
            _fail(f"--mask {kind}: choose from {', '.join(MASK_KINDS)}", 2)
    for kind in oracle_kinds:
        if kind not in ORACLES:
            _fail(f"--oracle {kind}: choose from {', '.join(ORACLES)}", 2)
    if not mask_kinds and not oracle_kinds and estimates is None:
        _fail("nothing to evaluate: --mask and --oracle are both empty and no --estimates given", 2)
    try:
        separator = Separator.from_checkpoint(checkpoint, runtime, shifts=shifts, gate_db=gate_db) if mask_kinds or plot else None
        # the model's stems when one is scored, else the references' (MUSDB18's four, or the folder's)
        names = separator.sources if separator is not None else reference_sources(musdb_root, stems_dir)
        tracks = reference_tracks(musdb_root, subset, split, is_wav, stems_dir, Path(".cache/stems-data"), names)
    except (StemsError, ValueError) as error:
        _fail(str(error))
    if two_stems and two_stems not in names:
        _fail(f"--two-stems {two_stems}: choose from {', '.join(names)}", 2)
    systems, cache_keys = {}, {}
    for kind in mask_kinds:
        label = f"stems {kind}"
        systems[label] = lambda track, refs, kind=kind: separator.separate(refs.sum(axis=0), 44100, mask=kind)
        cache_keys[label] = (f"weights-{separator.card['weights_sha256'][:16]}-{kind}" + (f"-shifts{shifts}" if shifts > 1 else "")
                             + (f"-gate{gate_db:g}" if gate_db != float("-inf") else ""))
    if estimates is not None:
        systems[f"estimates {estimates.name}"] = estimates_reader(estimates, names)
        cache_keys[f"estimates {estimates.name}"] = estimates_key(estimates)
    for kind in oracle_kinds:
        systems["mixture" if kind == "mix" else f"oracle {kind.upper()}"] = \
            lambda track, refs, kind=kind: oracle_estimates(refs, names, kind, STFTConfig())
    where = f"{'MUSDB18 ' + subset + ('/' + split if split and subset == 'train' else '') if musdb_root else stems_dir}"
    scope = f"{len(tracks)} tracks of {where}" + (f"; model {Path(separator.card['path']).name}" if mask_kinds else "")
    titles = {"SDR": f"SDR (dB), BSSEval v4, median over 1-s frames then over {scope}",
              "uSDR": f"uSDR (dB), SDX23's SDR of the whole track, mean over {scope}"}
    if plot is not None:
        _plot_track(plot, tracks, separator, mask_kinds[0] if mask_kinds else "soft")
    if not systems:
        return
    tables = [(names, tracks, systems, cache_keys, "")]
    if two_stems:
        pair = (two_stems, f"no_{two_stems}")
        paired = {}
        for label in [label for label in systems if label.startswith(("stems", "estimates"))]:
            systems[label], paired[label] = two_stem_system(systems[label], names, two_stems)
        for kind in oracle_kinds:  # the baselines of the two sources themselves
            paired["mixture" if kind == "mix" else f"oracle {kind.upper()}"] = \
                lambda track, refs, kind=kind: oracle_estimates(refs, pair, kind, STFTConfig())
        keys = {label: f"{cache_keys.get(label, label)}-two-stems-{two_stems}" for label in paired}
        tables.append((pair, two_stem_references(tracks, names, two_stems), paired, keys,
                       f"; {two_stems} / no_{two_stems} (--two-stems {two_stems})"))
    summaries, markdown_text = {}, ""
    for table_names, table_tracks, table_systems, table_keys, table_note in tables:
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("score", total=len(table_tracks) * len(table_systems))
            try:
                results = evaluate_systems(table_tracks, table_systems, table_names, cache_dir, jobs,
                                           lambda: progress.advance(task), table_keys)
            except StemsError as error:
                _fail(str(error))
        summary = {metric: summary_table(results, table_names, metric) for metric in titles}
        for metric, title in titles.items():
            _print_summary(summary[metric], table_names, title + table_note)
            markdown_text += ("\n" if markdown_text else "") + markdown_table(summary[metric], table_names, title + table_note)
        ibm = summary["SDR"].get("oracle IBM")
        for system, row in summary["SDR"].items():
            if ibm and not system.startswith(("oracle", "mixture")):
                Console().print(f"{system}: mean SDR {row['mean']:.2f} dB = {100 * row['mean'] / ibm['mean']:.0f}% of the oracle IBM1 mean")
        summaries[table_names] = {"summary": summary["SDR"], "summary_usdr": summary["uSDR"], "tracks": results}
    if json_out is not None:
        document = summaries[names]
        if two_stems:
            document["two_stems"] = {"stem": two_stems, **summaries[pair]}
        json_out.write_text(json.dumps(document, indent=1))
    if markdown is not None:
        markdown.write_text(markdown_text)
    if chart is not None:
        bar_chart(summaries[names]["summary"], names, chart, titles["SDR"])


def _print_summary(summary: dict[str, dict[str, float]], names: tuple[str, ...], title: str) -> None:
    """One row per system: its score per stem and their mean."""
    table = Table(title=title)
    table.add_column("system")
    for column in (*names, "mean"):
        table.add_column(column, justify="right")
    for system, row in summary.items():
        table.add_row(system, *(f"{row[c]:.2f}" for c in (*names, "mean")))
    Console().print(table)


def _plot_track(name: str, tracks, separator, mask: str) -> None:
    import numpy as np

    from .. import spectral
    from ..evaluate import oracle_masks
    from ..masks import inference_masks
    from ..report import mask_plot

    found = dict(tracks).get(name)
    if found is None:
        _fail(f"--plot {name}: no such track (tracks: {', '.join(t for t, _ in tracks)})")
    engine = separator.engines[0]  # an ensemble's masks are its members': the first member's are shown
    stems_spec = spectral.stft(found, engine.stft)
    mix_mag = np.abs(stems_spec.sum(axis=0))
    logits = engine.logits(np.pad(mix_mag, ((0, 0), (0, 0), (engine.past, engine.lookahead))))
    predicted = inference_masks(logits, mask)[:, 0]
    oracle = oracle_masks(stems_spec, "argmax")[:, 0]
    path = Path(f"{name}.masks.png")
    model = Path(engine.card["path"]).name
    if len(separator.engines) > 1:
        model += f" (member 1 of {len(separator.engines)} of {Path(separator.card['path']).name})"
    mask_plot(mix_mag[0], predicted, oracle, separator.sources, separator.sample_rate,
              engine.stft.hop_length, path, f"{name}: {mask} masks of {model} vs oracle argmax")
    console.print(f"wrote {path}", highlight=False)
