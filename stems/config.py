"""Configuration: frozen dataclasses with their defaults in code, named overrides in configs/*.yaml.

STFT settings (measured, see docs/benchmarks.md "Where the time goes"): n_fft 2048 gives 21.5 Hz bins, fine
enough to separate bass harmonics; hop 1024 (50 % overlap) halves the cost of the network, the
masking and the iSTFT compared with hop 512, and is the setting SiSEC's oracle IBM1 is defined at.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

@dataclass(frozen=True)
class STFTConfig:
    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 1024

    def __post_init__(self):
        if self.n_fft % self.hop_length:
            raise ConfigError(f"stft.n_fft ({self.n_fft}) must be a multiple of stft.hop_length ({self.hop_length})")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclass(frozen=True)
class ModelConfig:
    """The mask CNN, one head per source (see stems/model.py for the layer plan); the defaults are
    the shipped default model's.

    sources: the stems the model predicts, in output order. This is the one default stem list:
        training, data, `stems dataset build` and evaluation take theirs from here (a config or
        `--set model.sources=[...]`), inference from the checkpoint's card.
    widths: channels at full/`freq_stride`, at 1/`freq_stride`, and at 1/`freq_stride`² frequency.
    dilations: time dilations of the residual blocks at the coarsest frequency resolution; with the
        two 3-frame convolutions before them they set the context: 2 * (2 + sum(dilations)) + 1 frames.
    """

    sources: tuple[str, ...] = ("drums", "bass", "other", "vocals")
    audio_channels: int = 2
    widths: tuple[int, int, int] = (24, 48, 128)
    freq_stride: int = 8
    dilations: tuple[int, ...] = (1, 3)
    head_kernel: int = 5
    # Future frames the mask of a frame may look at: -1 centres the window (the article's sliding
    # window); fewer look-ahead frames (the rest of the window in the past) lower streaming latency.
    lookahead_frames: int = -1

    def __post_init__(self):
        if len(self.sources) < 2 or len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"model.sources must name two or more different stems, got {list(self.sources)}")
        if any(d < 1 for d in self.dilations):
            raise ConfigError("model.dilations must be 1 or more")


# the families of effects train.augment can name (stems/augment.py)
AUGMENT_FAMILIES = ("pitch", "eq", "saturation", "space", "limiter", "mixup", "codec")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained; the defaults are the shipped default model's run."""

    musdb_root: str = "../shared/data/musdb18-7s"
    stem_dirs: tuple[str, ...] = ("../shared/data/eir-cc0/train",)
    # "FOLDER=LICENCE" for stem folders whose songs.json does not state their licences (the card
    # lists every training source with its licence)
    licences: tuple[str, ...] = ("../shared/data/eir-cc0/train=CC0-1.0",)
    cache_dir: str = ".cache/stems-data"
    seed: int = 4
    batch_size: int = 16
    excerpt_frames: int = 64
    steps: int = 1500
    lr: float = 2e-3
    weight_decay: float = 0.0
    # "sdr": minus each stem's SDR over the excerpt, as BSSEval scores it (see train.mask_loss).
    loss: str = "sdr"
    # "bsseval": museval SDR (median over 1-s frames, then over tracks), as `stems evaluate`;
    # "quick": whole-signal SDR, about 20x cheaper, for frequent validation on slow machines.
    validation: str = "quick"
    remix_probability: float = 0.5
    gain_range_db: float = 6.0
    # Speed change by resampling (pitch and tempo together) within 1 ± speed_range; 0 = off.
    speed_range: float = 0.1
    # Songs are drawn with weight min(duration, song_weight_cap_s): 30 s lets a full song count for
    # about four 7-s previews; a large cap draws in proportion to length, a tiny one per song.
    song_weight_cap_s: float = 30.0
    # Folders of rendered songs (`stems dataset render`): drawn as rendered_share of the draws of
    # every stem they have, however long they are.
    rendered_dirs: tuple[str, ...] = ()
    rendered_share: float = 0.5
    # Each stem of a rendered song read at the mean energy of the song's stems (their balance as
    # rendered is far from a real mix's: "other" about 12 dB over the rest, drums 13 dB under).
    balance_rendered: bool = False
    # "FOLDER=HZ" for stem folders whose recordings hold nothing above HZ (MIR-1K, recorded at
    # 16 kHz: 8000): in an example with such a stem, the bins above its band (after the speed
    # change) are scored by no stem's loss, since its silence there is no label.
    band_limits: tuple[str, ...] = ()
    # What the network sees of such an example: "full" the mix as summed (the bins above the band
    # hold the other stems alone), "limited" the mix cut to the band as well.
    band_limited_mix: str = "full"
    # Folders of <song>/{vocals,accompaniment} (MIR-1K): an accompanied_share of the examples is
    # one such song's excerpt as recorded, its vocals scored against the accompaniment, which
    # labels the sum of the other stems only.
    accompanied_dirs: tuple[str, ...] = ()
    accompanied_share: float = 0.25
    # A song's excerpt takes each stem the song lacks altogether (rendered songs: vocals) from
    # another song, so that a mix without that stem is never the norm.
    fill_missing: bool = False
    # (low, high): the vocals' energy over each excerpt is set to a uniform draw in [low, high] dB
    # from the rest of the mix (scripts/vocal_levels.py measures real songs); empty: off.
    vocals_level_db: tuple[float, ...] = ()
    # The share of examples whose vocals level is drawn from vocals_level_db; the others keep the
    # level their songs give them.
    vocals_level_share: float = 1.0
    # Effects on the stems before they are summed (stems/augment.py): any of pitch (shift with
    # the tempo kept), eq, saturation, space (reverb or echo), limiter (on the mix, LimitAug),
    # mixup (a second stem of the same kind from another song), codec (the mix alone through an
    # MP3 encoder and decoder; the targets stay clean). Empty: none.
    augment: tuple[str, ...] = ()
    validate_every: int = 250
    save_every: int = 50
    threads: int = 1
    # Processes drawing training excerpts ahead of the steps (0: drawn between steps, resumable);
    # a GPU's steps outrun one process drawing excerpts.
    workers: int = 0
    # Exponential moving average of the weights (and BatchNorm statistics), updated every step with
    # this decay (Demucs trains so); validation and the best checkpoint use the average. 0: off.
    ema_decay: float = 0.0
    # A checkpoint (file or registry name) whose weights start the run instead of random ones
    # (fine-tuning); its model must match `model`. Empty: train from scratch.
    init: str = ""

    def __post_init__(self):
        if not 0.0 <= self.speed_range < 0.5:
            raise ConfigError(f"train.speed_range must be in [0, 0.5), got {self.speed_range}")
        if self.song_weight_cap_s <= 0:
            raise ConfigError(f"train.song_weight_cap_s must be above 0, got {self.song_weight_cap_s}")
        unknown = sorted(set(self.augment) - set(AUGMENT_FAMILIES))
        if unknown:
            raise ConfigError(f"train.augment: unknown {', '.join(unknown)}; choose among {', '.join(AUGMENT_FAMILIES)}")
        if any("=" not in item for item in self.licences):
            raise ConfigError(f"train.licences items must be FOLDER=LICENCE, got {list(self.licences)}")
        if not all(folder and isinstance(_finite_float(hz), float) and float(hz) > 0
                   for folder, _, hz in (item.partition("=") for item in self.band_limits)):
            raise ConfigError(f"train.band_limits items must be FOLDER=HZ, got {list(self.band_limits)}")
        unread = sorted(set(self.band_hz) - set(self.stem_folders))
        if unread:
            raise ConfigError(f"train.band_limits names {', '.join(unread)}, which is in none of train.stem_dirs, "
                              "train.rendered_dirs and train.accompanied_dirs")
        if not 0.0 < self.accompanied_share < 1.0:
            raise ConfigError(f"train.accompanied_share must be in (0, 1), got {self.accompanied_share}")
        if self.accompanied_dirs and self.loss != "sdr":
            raise ConfigError(f"train.accompanied_dirs needs train.loss sdr, got {self.loss}")
        if self.band_limited_mix not in ("full", "limited"):
            raise ConfigError(f"train.band_limited_mix must be full or limited, got {self.band_limited_mix!r}")
        if not 0.0 < self.rendered_share < 1.0:
            raise ConfigError(f"train.rendered_share must be in (0, 1), got {self.rendered_share}")
        if self.vocals_level_db and (len(self.vocals_level_db) != 2 or self.vocals_level_db[0] > self.vocals_level_db[1]):
            raise ConfigError(f"train.vocals_level_db must be [low, high] with low <= high, or [], got {list(self.vocals_level_db)}")
        if not 0.0 < self.vocals_level_share <= 1.0:
            raise ConfigError(f"train.vocals_level_share must be in (0, 1], got {self.vocals_level_share}")
        if self.workers < 0:
            raise ConfigError(f"train.workers must be 0 or more, got {self.workers}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def stem_folders(self) -> tuple[str, ...]:
        """Every folder of stems the run reads: stem, rendered and accompanied folders."""
        return (*self.stem_dirs, *self.rendered_dirs, *self.accompanied_dirs)

    @property
    def band_hz(self) -> dict[str, float]:
        """{folder: the top of its band in Hz} from band_limits."""
        return {folder: float(hz) for folder, _, hz in (item.partition("=") for item in self.band_limits)}


@dataclass(frozen=True)
class DatasetConfig:
    """`stems dataset build`: a pair whose stems explain the mix worse than this is rejected
    (e.g. a live acapella against a studio mix); offsets are searched within ±max_offset_s."""

    min_residual_snr_db: float = 10.0
    max_offset_s: float = 2.0


@dataclass(frozen=True)
class Config:
    stft: STFTConfig = field(default_factory=STFTConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A configuration key or value that does not fit the dataclasses."""


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    types = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{where}{key}' (known: {', '.join(known)})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' must be a mapping")
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, default, f"{where}{key}", types[key])
    return cls(**kwargs)


def _coerce(value: Any, default: Any, key: str, kind: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        item = typing.get_args(kind)[0]
        if item is str:
            return tuple(str(v) for v in value)
        return tuple(_coerce(v, item(), key, item) for v in value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # YAML 1.1 reads exponents without a dot (1e-3) as strings
            value = _finite_float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}' has an unsupported type")


def _finite_float(text: str) -> float | str:
    """The number `text` spells (e.g. "1e-3"), or `text` itself when it spells none."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def config_from_dict(values: dict[str, Any]) -> Config:
    return _build(Config, values, "")


def _set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key '{dotted}' goes through a non-mapping")
    node[leaf] = value


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key that a mapping repeats (plain YAML keeps the last one
    and silently drops the others)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"duplicate key '{key}' (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file's values, then `key.sub=value` overrides (values parsed as YAML)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.load(Path(path).read_text(), Loader=_UniqueKeyLoader)
        except OSError as error:
            raise ConfigError(f"{path}: cannot read config ({error.strerror})") from None
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of keys to values")
        values = loaded or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        _set_dotted(values, key.strip(), yaml.safe_load(raw))
    return config_from_dict(values)
