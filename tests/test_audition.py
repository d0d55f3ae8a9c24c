"""`stems audition`'s server on a real socket on 127.0.0.1: what it serves, what it refuses (paths,
methods, hosts), Range and HEAD, the tracks it finds, the SDR it shows, bad PATHs and shutdown on
SIGINT/SIGTERM. The page itself is driven in Chromium by test_audition_browser.py."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from stems.audition.library import Library
from stems.audition.scores import attach_scores, whole_signal_sdr
from stems.audition.server import AuditionServer
from stems.cli import app
from stems.errors import StemsError

from conftest import RATE, synth

EXE = os.path.join(os.path.dirname(sys.executable), "stems")
STEMS = ("drums", "bass", "other", "vocals")


def write_track(folder, seconds=0.5, ext="wav"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(STEMS):
        sf.write(folder / f"{name}.{ext}", synth(seconds, seed=i).T, RATE)
    return folder


@pytest.fixture
def track(tmp_path):
    """A track folder, plus a secret file beside it and a symlink from inside it to the secret."""
    folder = write_track(tmp_path / "out" / "song")
    (tmp_path / "secret.txt").write_text("secret")
    sf.write(tmp_path / "secret.wav", synth(0.1).T, RATE)
    (folder / "notes.txt").write_text("not a stem")
    (folder / "outside.wav").symlink_to(tmp_path / "secret.wav")
    return folder


def serve(library, host="127.0.0.1", sdr_label=None):
    server = AuditionServer(library, host, 0, sdr_label)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return server


@pytest.fixture
def server(track):
    server = serve(Library(track))
    yield server
    server.shutdown()
    server.server_close()


def request(server, path, method="GET", headers=None, body=None):
    """(status, headers, body) of one raw request: http.client sends `path` exactly as written."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_page_assets_and_track_list(server):
    status, headers, body = request(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert b'src="/static/app.js"' in body and b"data-ready" in body and b"http" not in body.replace(b"http-equiv", b"")
    for asset, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, _ = request(server, f"/static/{asset}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
    status, _, body = request(server, "/api/tracks")
    listed = json.loads(body)
    assert status == 200 and listed["sdr_label"] is None
    (song,) = listed["tracks"]
    assert song["name"] == "song"
    assert [(s["name"], s["url"], s["colour"]) for s in song["stems"]] == [
        ("drums", "/audio/0/drums.wav", "#009E73"), ("bass", "/audio/0/bass.wav", "#D55E00"),
        ("other", "/audio/0/other.wav", "#CC79A7"), ("vocals", "/audio/0/vocals.wav", "#56B4E9")]  # NI's colours


@pytest.mark.parametrize("path", [
    "/audio/0/../../secret.txt", "/audio/0/..%2f..%2fsecret.txt", "/audio/0/%2e%2e/%2e%2e/secret.txt",
    "/audio/0/%2E%2E%2F%2E%2E%2Fsecret.wav", "/static/../library.py", "/static/%2e%2e%2flibrary.py",
    "/etc/passwd", "//etc/passwd", "/audio/0//etc/passwd", "/audio/0/%2Fetc%2Fpasswd", "/audio/0/%00drums.wav",
    "/audio/0/outside.wav", "/audio/0/notes.txt", "/audio/1/drums.wav", "/audio/-1/drums.wav", "/audio/x/drums.wav",
    "/audio/0/", "/audio/", "/static/", "/api/", "/song/drums.wav", "/drums.wav", "/index.html/../app.js",
])
def test_refused_paths_are_404(server, path):
    status, _, body = request(server, path)
    assert status == 404 and b"secret" not in body and b"RIFF" not in body


def test_symlinks_leaving_path_are_not_listed(server):
    files = [s["url"] for s in json.loads(request(server, "/api/tracks")[2])["tracks"][0]["stems"]]
    assert not any("outside" in url for url in files)


def test_audio_head_and_ranges(server, track):
    data = (track / "drums.wav").read_bytes()
    size = len(data)
    status, headers, body = request(server, "/audio/0/drums.wav")
    assert status == 200 and body == data and headers["Content-Type"] == "audio/wav" and headers["Accept-Ranges"] == "bytes"
    status, headers, body = request(server, "/audio/0/drums.wav", "HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(size)
    for header, first, last in (("bytes=0-9", 0, 9), ("bytes=100-", 100, size - 1), ("bytes=-10", size - 10, size - 1),
                                (f"bytes=5-{size + 100}", 5, size - 1)):
        status, headers, body = request(server, "/audio/0/drums.wav", headers={"Range": header})
        assert status == 206 and body == data[first:last + 1]
        assert headers["Content-Range"] == f"bytes {first}-{last}/{size}" and headers["Content-Length"] == str(last - first + 1)
    for header in (f"bytes={size}-", "bytes=-0", "bytes=9-3"):
        status, headers, _ = request(server, "/audio/0/drums.wav", headers={"Range": header})
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, _, body = request(server, "/audio/0/drums.wav", headers={"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == data  # multiple ranges: the whole file, as RFC 9110 allows


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_only_get_and_head(server, method):
    status, headers, _ = request(server, "/audio/0/drums.wav", method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_foreign_host_names_are_refused_on_loopback(server):
    port = server.server_address[1]
    assert request(server, "/", headers={"Host": "attacker.example"})[0] == 403  # DNS rebinding
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert request(server, "/", headers={"Host": host})[0] == 200


def test_output_folder_lists_tracks_and_extracts_stem_mp4(tmp_path):
    from stems.stemmp4 import pack_stems

    out = tmp_path / "separated"
    write_track(out / "b song", ext="flac")
    write_track(out / "a song")
    sf.write(out / "a song" / "no_vocals.mp3", synth(0.5).T, RATE)
    pack_stems(write_track(tmp_path / "packed"), out / "c song.stem.mp4")
    (out / "empty").mkdir()
    library = Library(out)
    try:
        assert [t.name for t in library.tracks] == ["a song", "b song", "c song"]
        assert [s.file for s in library.tracks[0].stems] == ["drums.wav", "bass.wav", "other.wav", "vocals.wav", "no_vocals.mp3"]
        server = serve(library)
        status, headers, body = request(server, "/audio/1/vocals.flac")
        assert status == 200 and headers["Content-Type"] == "audio/flac" and body[:4] == b"fLaC"
        assert request(server, "/audio/0/no_vocals.mp3")[1]["Content-Type"] == "audio/mpeg"
        status, _, body = request(server, "/audio/2/vocals.wav")  # the .stem.mp4's streams, as wav
        assert status == 200 and body[:4] == b"RIFF"
        extracted = library.file(2, "vocals.wav")
        assert abs(sf.info(extracted).duration - 0.5) < 0.05
        server.shutdown()
        server.server_close()
    finally:
        library.close()
    assert not extracted.exists()  # the scratch folder goes with the server


def test_whole_signal_sdr():
    s = np.ones((2, 1000))
    assert whole_signal_sdr(s, s * 1.1) == pytest.approx(20.0)  # |s|² / |0.1 s|² = 100
    assert whole_signal_sdr(s, s) == math.inf and math.isnan(whole_signal_sdr(0 * s, s))
    assert whole_signal_sdr(s[:1], np.pad(s * 0.9, ((0, 0), (0, 50)))) == pytest.approx(20.0)  # mono, longer estimate


def test_scores_from_reference_folder_and_evaluation_json(tmp_path):
    library = Library(write_track(tmp_path / "song"))
    reference = tmp_path / "true" / "song"
    reference.mkdir(parents=True)
    sf.write(reference / "vocals.wav", 1.1 * synth(0.5, seed=3).T, RATE)  # the estimate is 1/1.1 of it: 20.8 dB
    label = attach_scores(library, tmp_path / "true", "song")
    assert [s.sdr for s in library.tracks[0].stems[:3]] == [None] * 3
    assert library.tracks[0].stems[3].sdr == pytest.approx(20 * math.log10(1.1 / 0.1), abs=0.1)
    assert "whole-signal" in label
    scores = {"stems soft": {"song": {name: {"SDR": float(i)} for i, name in enumerate(STEMS)}}, "oracle IBM": {}}
    (tmp_path / "eval.json").write_text(json.dumps({"summary": {}, "tracks": scores}))
    label = attach_scores(library, tmp_path / "eval.json", "song")
    assert [s.sdr for s in library.tracks[0].stems] == [0.0, 1.0, 2.0, 3.0] and "BSSEval" in label and "stems soft" in label
    server = serve(library, sdr_label=label)
    assert [s["sdr"] for s in json.loads(request(server, "/api/tracks")[2])["tracks"][0]["stems"]] == [0.0, 1.0, 2.0, 3.0]
    server.shutdown()
    server.server_close()
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(StemsError, match="not an evaluation JSON"):
        attach_scores(library, tmp_path / "bad.json", "song")


def bad_path(folder, kind):
    """A PATH of one bad kind inside `folder`."""
    if kind == "missing":
        return folder / "missing"
    if kind == "not stems":
        (folder / "notes.txt").write_text("not audio")
    elif kind == "plain file":
        write_track(folder / "song")
        sf.write(folder / "song.wav", synth(0.1).T, RATE)
        return folder / "song.wav"
    elif kind == "duplicate":
        write_track(folder)
        sf.write(folder / "vocals.flac", synth(0.1).T, RATE)
    return folder


@pytest.mark.parametrize("kind,problem", [("missing", "no such file or folder"), ("empty", "no stems here"),
                                          ("not stems", "no stems here"), ("plain file", "not a folder of stems"),
                                          ("duplicate", "several vocals stems")])
def test_bad_path_is_one_line_and_exit_1(tmp_path, kind, problem):
    folder = tmp_path / "in"
    folder.mkdir()
    done = CliRunner().invoke(app, ["audition", str(bad_path(folder, kind)), "--port", "0", "--no-open"])
    assert done.exit_code == 1 and problem in done.output and len(done.output.strip().splitlines()) == 1


def test_busy_port_is_one_line(track):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        done = CliRunner().invoke(app, ["audition", str(track), "--port", str(blocker.getsockname()[1]), "--no-open"])
    assert done.exit_code == 1 and "cannot listen on 127.0.0.1" in done.output


@pytest.mark.parametrize("signum,status,host", [(signal.SIGINT, 130, "127.0.0.1"), (signal.SIGTERM, 143, "0.0.0.0")])
def test_cli_serves_until_a_signal_then_closes_the_socket(track, signum, status, host):
    process = subprocess.Popen([EXE, "audition", str(track), "--port", "0", "--no-open", "--host", host],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline()
        match = re.fullmatch(rf"http://{re.escape(host)}:(\d+)/\n", url)
        assert match, url
        port = int(match.group(1))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/audio/0/drums.wav", headers={"Range": "bytes=0-3"})
        assert connection.getresponse().read() == b"RIFF"
        connection.close()
        process.send_signal(signum)
        assert process.wait(timeout=30) == status
    finally:
        process.kill()
        process.wait()
    errors = process.stderr.read()
    assert f"stopped by {signal.Signals(signum).name}" in errors
    assert ("warning" in errors and "other machines" in errors) == (host != "127.0.0.1")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
