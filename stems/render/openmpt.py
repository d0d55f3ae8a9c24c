"""One tracker module (.mod, .xm, .s3m, .it) rendered by libopenmpt through ctypes, whole or with
every instrument but one muted.

libopenmpt's C API (as libopenmpt.h and libopenmpt_ext.h declare it in 0.6, Debian 12's version;
the ext interface dates from 0.3) is called from the shared library alone, so neither a compiler
nor the -dev package is needed. A module is
loaded fresh for every render, so no state of one render leaks into the next. The output is
float (no clipping, no dither), 44.1 kHz stereo, with the render settings spelled out rather than
left to the library's defaults, which may change between versions: the module's own stereo
separation (100 %), 8-tap windowed-sinc interpolation for every format (the Amiga resampler
emulation, which would override it for .mod files, off), the default volume ramping (it acts on
each voice alone, so the voices still add up), no repeat, and at the song's end a stop instead
of the fade-out.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache

import numpy as np

from ..errors import StemsError
from .command import RATE

LIBRARY = "libopenmpt.so.0"
APT = "apt-get install -y --no-install-recommends libopenmpt0"
RENDER_PARAMS = {2: 100, 3: 8}  # OPENMPT_MODULE_RENDER_STEREOSEPARATION_PERCENT, _INTERPOLATIONFILTER_LENGTH
CTLS = {"play.at_end": "stop", "render.resampler.emulate_amiga": "0"}
MAX_SECONDS = 30 * 60  # longer than any song: a module still playing then loops in a way libopenmpt missed
BLOCK = 1 << 16  # frames per read
NOTE_COMMAND, INSTRUMENT_COMMAND = 0, 1  # OPENMPT_MODULE_COMMAND_NOTE, _INSTRUMENT
HIGHEST_NOTE = 120  # note values 1-120 start a note; above are note-off, cut and fade

_POINTER, _INT32 = ctypes.c_void_p, ctypes.c_int32
_SIGNATURES = {  # name: (return type, argument types), as libopenmpt.h and libopenmpt_ext.h declare them
    "openmpt_module_ext_create_from_memory": (_POINTER, [ctypes.c_char_p, ctypes.c_size_t, _POINTER, _POINTER, _POINTER,
                                                         _POINTER, ctypes.POINTER(ctypes.c_int),
                                                         ctypes.POINTER(_POINTER), _POINTER]),
    "openmpt_module_ext_destroy": (None, [_POINTER]),
    "openmpt_module_ext_get_module": (_POINTER, [_POINTER]),
    "openmpt_module_ext_get_interface": (ctypes.c_int, [_POINTER, ctypes.c_char_p, _POINTER, ctypes.c_size_t]),
    "openmpt_module_set_repeat_count": (ctypes.c_int, [_POINTER, _INT32]),
    "openmpt_module_set_render_param": (ctypes.c_int, [_POINTER, ctypes.c_int, _INT32]),
    "openmpt_module_ctl_set_text": (ctypes.c_int, [_POINTER, ctypes.c_char_p, ctypes.c_char_p]),
    "openmpt_module_read_interleaved_float_stereo": (ctypes.c_size_t, [_POINTER, _INT32, ctypes.c_size_t, _POINTER]),
    "openmpt_module_get_num_instruments": (_INT32, [_POINTER]),
    "openmpt_module_get_num_samples": (_INT32, [_POINTER]),
    "openmpt_module_get_instrument_name": (_POINTER, [_POINTER, _INT32]),
    "openmpt_module_get_sample_name": (_POINTER, [_POINTER, _INT32]),
    "openmpt_module_get_metadata": (_POINTER, [_POINTER, ctypes.c_char_p]),
    "openmpt_module_get_num_orders": (_INT32, [_POINTER]),
    "openmpt_module_get_order_pattern": (_INT32, [_POINTER, _INT32]),
    "openmpt_module_get_num_channels": (_INT32, [_POINTER]),
    "openmpt_module_get_pattern_num_rows": (_INT32, [_POINTER, _INT32]),
    "openmpt_module_get_pattern_row_channel_command": (ctypes.c_uint8,
                                                       [_POINTER, _INT32, _INT32, _INT32, ctypes.c_int]),
    "openmpt_free_string": (None, [_POINTER]),
    "openmpt_log_func_silent": (None, [ctypes.c_char_p, _POINTER]),
    "openmpt_get_library_version": (ctypes.c_uint32, []),
}


class _Interactive(ctypes.Structure):
    """libopenmpt_ext's openmpt_module_ext_interface_interactive: 16 function pointers, of which
    only the instrument mute is called (the others keep the layout)."""

    _fields_ = [(name, _POINTER) for name in (
        "set_current_speed", "set_current_tempo", "set_tempo_factor", "get_tempo_factor", "set_pitch_factor",
        "get_pitch_factor", "set_global_volume", "get_global_volume", "set_channel_volume", "get_channel_volume",
        "set_channel_mute_status", "get_channel_mute_status")] + [
        ("set_instrument_mute_status", ctypes.CFUNCTYPE(ctypes.c_int, _POINTER, _INT32, ctypes.c_int))] + [
        (name, _POINTER) for name in ("get_instrument_mute_status", "play_note", "stop_note")]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """libopenmpt, its functions typed.

    Raises:
        StemsError: it is not installed (or too old for the ext interface), naming the apt-get command.
    """
    try:
        lib = ctypes.CDLL(LIBRARY)
        for name, (result, arguments) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = result, arguments
    except (OSError, AttributeError) as error:
        raise StemsError(f"libopenmpt is not installed ({error}): {APT}") from None
    return lib


def _text(lib: ctypes.CDLL, pointer: int | None) -> str:
    """A string libopenmpt returned, freed."""
    if not pointer:
        return ""
    try:
        return ctypes.string_at(pointer).decode("utf-8", "replace").strip()
    finally:
        lib.openmpt_free_string(pointer)


class Module:
    """A module loaded by libopenmpt (use as a context manager: it frees the module).

    Raises:
        StemsError: libopenmpt cannot read `data`, naming `origin` and libopenmpt's message.
    """

    def __init__(self, data: bytes, origin: str):
        self.lib = lib = library()
        error, message = ctypes.c_int(0), _POINTER()
        silent = ctypes.cast(lib.openmpt_log_func_silent, _POINTER)  # the error comes back in `message` instead
        self.ext = lib.openmpt_module_ext_create_from_memory(data, len(data), silent, None, None, None,
                                                             ctypes.byref(error), ctypes.byref(message), None)
        reason = _text(lib, message.value)
        if not self.ext:
            raise StemsError(f"{origin}: libopenmpt cannot read it ({reason or f'error {error.value}'})")
        self.module = lib.openmpt_module_ext_get_module(self.ext)
        self.interactive = _Interactive()
        if not lib.openmpt_module_ext_get_interface(self.ext, b"interactive", ctypes.byref(self.interactive),
                                                    ctypes.sizeof(self.interactive)):
            self.close()
            raise StemsError(f"libopenmpt has no interactive interface (0.3 or later has): {APT}")

    def close(self) -> None:
        if self.ext:
            self.lib.openmpt_module_ext_destroy(self.ext)
            self.ext = None

    def __enter__(self) -> Module:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def format(self) -> str:
        """The module's format as libopenmpt names it ("it", "xm", "s3m", "mod"...)."""
        return _text(self.lib, self.lib.openmpt_module_get_metadata(self.module, b"type"))

    def instrument_names(self) -> list[str]:
        """The names of the instrument slots (none for a module that plays samples directly)."""
        count = self.lib.openmpt_module_get_num_instruments(self.module)
        return [_text(self.lib, self.lib.openmpt_module_get_instrument_name(self.module, i)) for i in range(count)]

    def sample_names(self) -> list[str]:
        count = self.lib.openmpt_module_get_num_samples(self.module)
        return [_text(self.lib, self.lib.openmpt_module_get_sample_name(self.module, i)) for i in range(count)]

    def note_counts(self) -> dict[int, int]:
        """Notes started per instrument slot (or sample slot, in a module without instruments;
        0-based) over the order list, pattern by pattern: a note without an instrument number
        plays the channel's last one. Jumps are not followed, so this counts what the patterns
        hold, not how often they are played."""
        lib, module = self.lib, self.module
        cell = lib.openmpt_module_get_pattern_row_channel_command
        channels = lib.openmpt_module_get_num_channels(module)
        last = [0] * channels
        counts: dict[int, int] = {}
        for order in range(lib.openmpt_module_get_num_orders(module)):
            pattern = lib.openmpt_module_get_order_pattern(module, order)
            for row in range(lib.openmpt_module_get_pattern_num_rows(module, pattern)):
                for channel in range(channels):
                    slot = cell(module, pattern, row, channel, INSTRUMENT_COMMAND)
                    if slot:
                        last[channel] = slot
                    note = cell(module, pattern, row, channel, NOTE_COMMAND)
                    if 1 <= note <= HIGHEST_NOTE and last[channel]:
                        counts[last[channel] - 1] = counts.get(last[channel] - 1, 0) + 1
        return dict(sorted(counts.items()))

    def render(self, solo: int | None, origin: str) -> np.ndarray:
        """The whole song (`solo` None) or slot `solo` alone (every other instrument, or sample,
        slot muted): float32 (2, samples) at 44.1 kHz. Call once per loaded module.

        Raises:
            StemsError: the song plays longer than MAX_SECONDS.
        """
        lib, module = self.lib, self.module
        settings = [("repeat count 0", lib.openmpt_module_set_repeat_count(module, 0))]
        settings += [(f"render param {param} = {value}", lib.openmpt_module_set_render_param(module, param, value))
                     for param, value in RENDER_PARAMS.items()]
        settings += [(f"{key} = {value}", lib.openmpt_module_ctl_set_text(module, key.encode(), value.encode()))
                     for key, value in CTLS.items()]
        refused = [setting for setting, done in settings if not done]
        if refused:
            version = lib.openmpt_get_library_version()
            raise StemsError(f"libopenmpt {version >> 24}.{(version >> 16) & 0xFF} refuses the render settings "
                             f"{', '.join(refused)}")
        if solo is not None:
            slots = lib.openmpt_module_get_num_instruments(module) or lib.openmpt_module_get_num_samples(module)
            for slot in range(slots):
                self.interactive.set_instrument_mute_status(self.ext, slot, int(slot != solo))
        blocks, total = [], 0
        while True:
            block = np.empty((BLOCK, 2), np.float32)
            frames = lib.openmpt_module_read_interleaved_float_stereo(module, RATE, BLOCK, block.ctypes.data)
            if frames == 0:
                break
            blocks.append(block[:frames])
            total += frames
            if total > MAX_SECONDS * RATE:
                raise StemsError(f"{origin}: still playing after {MAX_SECONDS // 60} minutes")
        return np.ascontiguousarray(np.concatenate(blocks or [np.zeros((0, 2), np.float32)]).T)


def render(data: bytes, origin: str, solo: int | None = None) -> np.ndarray:
    """libopenmpt's rendering of a module (bytes): the whole song, or slot `solo` alone (see
    Module.render); float32 (2, samples) at 44.1 kHz.

    Raises:
        StemsError: libopenmpt is missing or cannot read the module, or the song does not end.
    """
    with Module(data, origin) as module:
        return module.render(solo, origin)
