"""`stems app`: a local page where songs dropped in are separated in a queue, then played, remixed
and downloaded (uploads: receiving files; jobs: the queue and its worker; downloads: zip, stem
file, delete; server: the HTTP server; static/: the page, which reuses the audition mixer)."""
