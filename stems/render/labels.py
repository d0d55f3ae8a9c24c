"""A stem label from a name (a track's, an instrument's, a sample's): drums for a drum word,
else bass for a bass word, else none.

Drum words come first, so a bass drum is drums; the bassoon, bass oboe, bass clarinet and bass
flute are not bass; short words (bd, sd, sn, hh, hat, tom, ride, rim, sub, bas...) count only
where no letter touches them ("bd01", "rack tom", not "tomato" or "chats").
"""

from __future__ import annotations

import re

DRUM_WORDS = re.compile(r"kick|snare|snarre|hi-?hat|cymbal|crash|drum|perc|conga|bongo|shaker|tambou?rin|clap|cowbell|"
                        r"timbale|rimshot|(?<![a-z])(?:bd|sd|sn|hh|hats?|toms?|ride|rim|snr|kik|tamb)(?![a-z])")
BASS_WORDS = re.compile(r"bass(?!oon|[\s_.:-]*(?:oboe|clarinet|flute))|(?<![a-z])(?:bas|sub)(?![a-z])")
STEM_WORDS = (("drums", DRUM_WORDS), ("bass", BASS_WORDS))


def stem_of_name(name: str) -> str | None:
    """drums or bass when `name` holds a drum or a bass word, else None."""
    lowered = name.lower()
    return next((stem for stem, words in STEM_WORDS if words.search(lowered)), None)
