"""Rendered training stems: songs whose parts are written as MIDI (or projects, or tracker
modules), rendered one part at a time and labelled drums, bass or other, so the stems add up to
the mix exactly.

midi.py splits a Standard MIDI File into labelled parts, fluidsynth.py renders one; mmp.py
splits an LMMS project into labelled tracks (lmms_projects.json holds the reviewed labels),
lmms.py renders one; tracker.py splits a tracker module into labelled instruments, openmpt.py
renders one (libopenmpt through ctypes); catalogue.py lists the song collections (COLLECTIONS:
the songs that some Debian packages install) and the soundfonts, and songs.py renders a
collection into `<out>/<song>/{drums,bass,other}.flac` folders that the trainer reads.
"""
