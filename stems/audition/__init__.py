"""`stems audition`: a local page to listen to and remix separated stems (library: what may be
served; scores: the SDR beside each stem; server: the HTTP server; static/: the page)."""
