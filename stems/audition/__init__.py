"""`stems audition`: a local page to listen to and remix separated stems (library: what may be
served; scores: the SDR beside each stem; serving: what its server shares with `stems app`'s;
server: the HTTP server; static/: the page and its mixer)."""
