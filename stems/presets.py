"""Named choices of outputs over `stems separate`'s options (`--preset`), which `stems app` offers too."""

from __future__ import annotations

from dataclasses import dataclass

from .stemmp4 import STEM_MP4


def stem_list(text: str | None) -> tuple[str, ...] | None:
    """'drums, no_vocals' (the --stems option) -> ("drums", "no_vocals"); None or '' -> None: every stem."""
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else None


@dataclass(frozen=True)
class Preset:
    """Named defaults over `stems separate`'s options; the options a user gives win."""

    what: str
    stems: str | None = None
    fmt: str | None = None

    def __str__(self) -> str:
        flags = " ".join(f"--{flag} {value}" for flag, value in (("stems", self.stems), ("format", self.fmt)) if value)
        return f"{self.what} ({flags})"


PRESETS = {
    "karaoke": Preset("the instrumental only, mp3 320 kb/s", stems="no_vocals", fmt="mp3"),
    "acapella": Preset("the vocals only, wav", stems="vocals", fmt="wav"),
    "dj": Preset("one NI Stem file per track for Traktor and Mixxx", fmt=STEM_MP4),
}
