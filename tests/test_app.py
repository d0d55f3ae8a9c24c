"""`stems app`'s server on a real socket on 127.0.0.1, with the tiny test model: upload -> job ->
progress -> stems; cancelling; bad files; refusals (size, disk, token, Origin, Host, names, paths);
downloads and deletion; the command's stop on SIGINT/SIGTERM. The page itself is driven in
Chromium by test_app_browser.py."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import zipfile
from collections import namedtuple
from urllib.parse import quote

import pytest
import soundfile as sf
from typer.testing import CliRunner

import stems.app.jobs as jobs_module
from stems.app.server import AppServer
from stems.app.uploads import LOCK, Uploads, safe_name
from stems.audition.library import Library
from stems.cli import app

from conftest import RATE, synth, wait_for
from test_audition import request, write_track

EXE = os.path.join(os.path.dirname(sys.executable), "stems")
STEMS = ["drums", "bass", "other", "vocals"]
CHUNK_S = 256 * 1024 / RATE  # one chunk of the separator: progress is reported per chunk


def wav_bytes(seconds: float, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, synth(seconds, seed=seed).T, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
def lib(tmp_path):
    return tmp_path / "lib"


@pytest.fixture
def serve_app(lib, tiny_checkpoint):
    """start(**options) -> a live AppServer on `lib` with the tiny model; all closed at the end."""
    servers = []

    def start(models=None, **options) -> AppServer:
        server = AppServer(Library(lib, growing=True), models or {"tiny": str(tiny_checkpoint)}, "127.0.0.1", 0, **options)
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.close()
        server.library.close()


@pytest.fixture
def server(serve_app):
    return serve_app()


def upload(server, body: bytes, name: str = "song.wav", headers: dict | None = None):
    """(status, headers, body) of an upload as the page sends it, with the page's token."""
    sent = {"X-Stems-Token": server.token, "X-Filename": quote(name, safe=""), **(headers or {})}
    return request(server, "/api/upload", "POST", {k: v for k, v in sent.items() if v is not None}, body)


def jobs(server) -> dict[int, dict]:
    return {job["id"]: job for job in json.loads(request(server, "/api/jobs")[2])["jobs"]}


def wait_ended(server, *ids) -> dict[int, dict]:
    wait_for(lambda: all(jobs(server)[i]["state"] in ("done", "failed", "cancelled") for i in ids), 60)
    return jobs(server)


def files_in(folder) -> list[str]:
    """Every file under `folder` but the running apps' upload locks."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != LOCK)


def pending_uploads(server) -> list[str]:
    return sorted(p.name for p in server.uploads.folder.iterdir() if p.name != LOCK)


Gate = namedtuple("Gate", "started go")


@pytest.fixture
def gate(monkeypatch):
    """Holds each job after its first chunk (its progress already reported) until `go` is set, so
    a test sees it running and can act on it; the job's own check comes at the next chunk."""
    started, go = threading.Event(), threading.Event()
    separate = jobs_module.separate_track

    def held(*args, progress, **kwargs):
        def report(done, total):
            progress(done, total)
            started.set()
            go.wait(30)
        return separate(*args, progress=report, **kwargs)

    monkeypatch.setattr(jobs_module, "separate_track", held)
    yield Gate(started, go)
    go.set()


def test_upload_becomes_a_job_with_progress_then_four_stems(server, lib, gate):
    status, _, body = upload(server, wav_bytes(3 * CHUNK_S), "My Song.wav")
    job = json.loads(body)
    assert status == 201 and job["state"] in ("queued", "running") and job["name"] == "My Song.wav"
    assert gate.started.wait(30)
    running = jobs(server)[job["id"]]
    assert running["state"] == "running" and 0 < running["progress"] < 1  # measured: one chunk of three
    gate.go.set()
    done = wait_ended(server, job["id"])[job["id"]]
    assert done["state"] == "done" and done["progress"] == 1.0 and done["track"] == "My Song" and done["error"] is None
    assert files_in(lib) == [f"My Song/{stem}.wav" for stem in sorted(STEMS)]
    assert sf.info(lib / "My Song" / "vocals.wav").duration == pytest.approx(3 * CHUNK_S, abs=1e-3)
    (track,) = json.loads(request(server, "/api/tracks")[2])["tracks"]
    assert [s["name"] for s in track["stems"]] == STEMS and track["key"] == "My Song"
    status, headers, body = request(server, track["stems"][3]["url"])
    assert status == 200 and body == (lib / "My Song" / "vocals.wav").read_bytes() and headers["Accept-Ranges"] == "bytes"


def test_long_poll_answers_at_the_next_change(server):
    version = json.loads(request(server, "/api/jobs")[2])["version"]
    later = threading.Timer(0.3, upload, (server, wav_bytes(1.0)))
    later.start()
    answer = json.loads(request(server, f"/api/jobs?since={version}")[2])
    later.join()
    assert answer["version"] > version and len(answer["jobs"]) == 1


def test_cancel_a_running_job_leaves_nothing_and_the_next_one_runs(server, lib, gate):
    first = json.loads(upload(server, wav_bytes(3 * CHUNK_S), "long.wav")[2])
    second = json.loads(upload(server, wav_bytes(1.0, seed=1), "next.wav")[2])
    assert gate.started.wait(30)
    assert any(p.name.endswith(".part.wav") for p in (lib / "long").iterdir())  # the writers are at work
    status, _, body = request(server, f"/api/jobs/{first['id']}/cancel", "POST", {"X-Stems-Token": server.token})
    assert status == 200
    gate.go.set()
    ended = wait_ended(server, first["id"], second["id"])
    assert ended[first["id"]]["state"] == "cancelled" and ended[second["id"]]["state"] == "done"
    assert files_in(lib) == [f"next/{stem}.wav" for stem in sorted(STEMS)]  # no partial file, no upload
    assert not (lib / "long").exists()


def test_cancel_a_queued_job(server, lib, gate):
    first = json.loads(upload(server, wav_bytes(3 * CHUNK_S))[2])
    queued = json.loads(upload(server, wav_bytes(1.0), "queued.wav")[2])
    assert gate.started.wait(30) and jobs(server)[queued["id"]]["state"] == "queued"
    request(server, f"/api/jobs/{queued['id']}/cancel", "POST", {"X-Stems-Token": server.token})
    assert jobs(server)[queued["id"]]["state"] == "cancelled"
    assert len(pending_uploads(server)) == 1  # its upload is gone at once
    gate.go.set()
    assert wait_ended(server, first["id"])[first["id"]]["state"] == "done"
    assert request(server, "/api/jobs/99/cancel", "POST", {"X-Stems-Token": server.token})[0] == 404


def test_bad_files_fail_with_one_line_and_the_next_job_runs(server, lib):
    good = wav_bytes(2.0)
    sent = [("notes.mp3", b"these are not the songs you are looking for\n" * 20), ("empty.wav", b""),
            ("cut.wav", good[: len(good) // 3]), ("fine.wav", good)]
    ids = [json.loads(upload(server, body, name)[2])["id"] for name, body in sent]
    ended = wait_ended(server, *ids)
    errors = [ended[i]["error"] for i in ids]
    assert [ended[i]["state"] for i in ids] == ["failed", "failed", "failed", "done"]
    assert errors[0].startswith("notes.mp3: ") and "not an audio file" in errors[0]
    assert errors[1] == "empty.wav: empty file"
    assert errors[2].startswith("cut.wav: truncated")
    assert not any(".uploads" in e or "\n" in e for e in errors[:3])  # about the user's file, one line
    assert files_in(lib) == [f"fine/{stem}.wav" for stem in sorted(STEMS)]


def test_settings_choose_the_outputs_and_are_checked(server, lib):
    def settings(text):
        return request(server, "/api/settings", "POST", {"X-Stems-Token": server.token}, text)

    offered = json.loads(request(server, "/api/settings")[2])
    assert offered["choice"] == {"model": "tiny", "outputs": "four", "format": "wav"} and offered["max_upload_mb"] == 2048
    assert [o["name"] for o in offered["outputs"]] == ["four", "karaoke", "acapella", "dj"]
    for bad in ('{"model": "huge", "outputs": "four", "format": "wav"}', '{"model": "tiny", "outputs": "all", "format": "wav"}',
                '{"model": "tiny", "outputs": "four", "format": "exe"}', '["tiny"]', "{", "x" * 5000):
        status, _, body = settings(bad)
        assert status in (400, 413) and body.count(b"\n") == 1
    assert settings('{"model": "tiny", "outputs": "karaoke", "format": "flac"}')[0] == 200
    job = json.loads(upload(server, wav_bytes(1.0), "karaoke.wav")[2])
    assert job["outputs"] == "karaoke" and job["format"] == "flac"
    assert wait_ended(server, job["id"])[job["id"]]["state"] == "done"
    assert files_in(lib) == ["karaoke/no_vocals.flac"]
    (track,) = json.loads(request(server, "/api/tracks")[2])["tracks"]
    assert track["stem_file"] is None  # not the four stems an NI stem file holds
    assert request(server, "/download/karaoke/stem.mp4")[0] == 409


def test_a_model_that_does_not_load_fails_its_job_only(serve_app, lib, tmp_path, tiny_checkpoint):
    server = serve_app({"tiny": str(tiny_checkpoint), "gone": str(tmp_path / "gone.onnx")})
    choose = {"outputs": "four", "format": "wav"}
    request(server, "/api/settings", "POST", {"X-Stems-Token": server.token}, json.dumps({"model": "gone", **choose}))
    failed = json.loads(upload(server, wav_bytes(1.0), "a.wav")[2])["id"]
    request(server, "/api/settings", "POST", {"X-Stems-Token": server.token}, json.dumps({"model": "tiny", **choose}))
    done = json.loads(upload(server, wav_bytes(1.0), "b.wav")[2])["id"]
    ended = wait_ended(server, failed, done)
    assert ended[failed]["state"] == "failed" and "gone.onnx: model file not found" in ended[failed]["error"]
    assert ended[done]["state"] == "done" and files_in(lib) == [f"b/{stem}.wav" for stem in sorted(STEMS)]


def test_too_large_and_cut_short_uploads_keep_nothing(serve_app, lib):
    server = serve_app(max_upload_bytes=1 << 20)
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.putrequest("POST", "/api/upload")
    for key, value in {"X-Stems-Token": server.token, "X-Filename": "big.wav", "Content-Length": str(2 << 20)}.items():
        connection.putheader(key, value)
    connection.endheaders()  # refused on the headers: the body is never sent
    response = connection.getresponse()
    assert response.status == 413 and b"too large" in response.read()
    connection.close()

    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    connection.putrequest("POST", "/api/upload")
    for key, value in {"X-Stems-Token": server.token, "X-Filename": "cut.wav", "Content-Length": "100000"}.items():
        connection.putheader(key, value)
    connection.endheaders(b"RIFF" + bytes(1000))
    connection.sock.shutdown(1)  # the browser went away mid-upload
    assert connection.getresponse().status == 400
    connection.close()
    assert files_in(lib) == [] and jobs(server) == {}


def test_no_space_is_refused_before_reading(server, lib, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=10 << 20))
    status, _, body = upload(server, wav_bytes(1.0))
    assert status == 507 and b"not enough disk space" in body
    assert files_in(lib) == [] and jobs(server) == {}


@pytest.mark.parametrize("route,body", [("/api/upload", b"RIFF"), ("/api/jobs/1/cancel", b""),
                                        ("/api/tracks/song/delete", b""), ("/api/settings", b"{}")])
@pytest.mark.parametrize("problem", ["no token", "wrong token", "foreign Origin", "null Origin", "foreign Host"])
def test_changes_need_the_token_same_origin_and_host(server, lib, route, body, problem):
    write_track(lib / "song")
    port = server.server_address[1]
    headers = {"X-Stems-Token": server.token, "X-Filename": "x.wav", "Origin": f"http://127.0.0.1:{port}"}
    if problem == "no token":
        del headers["X-Stems-Token"]
    elif problem == "wrong token":
        headers["X-Stems-Token"] = server.token[:-1] + ("A" if server.token[-1] != "A" else "B")
    elif problem == "foreign Origin":
        headers["Origin"] = "http://evil.example"
    elif problem == "null Origin":
        headers["Origin"] = "null"
    else:
        headers["Host"] = f"evil.example:{port}"
        headers["Origin"] = f"http://evil.example:{port}"
    assert request(server, route, "POST", headers, body)[0] == 403
    assert files_in(lib) == [f"song/{stem}.wav" for stem in sorted(STEMS)] and jobs(server) == {}


def test_the_token_is_in_the_page_only_and_new_each_launch(serve_app):
    first, second = serve_app(), serve_app()
    status, headers, page = request(first, "/")
    assert status == 200 and f'<meta name="stems-token" content="{first.token}">'.encode() in page
    assert "default-src 'self'" in headers["Content-Security-Policy"] and first.token != second.token
    for path in ("/api/tracks", "/api/jobs", "/api/settings", "/static/page.js"):
        assert first.token.encode() not in request(first, path)[2]
    for asset, kind in (("page.js", "text/javascript"), ("mixer.js", "text/javascript"), ("app.css", "text/css"),
                        ("style.css", "text/css")):
        status, headers, _ = request(first, f"/static/{asset}")
        assert status == 200 and headers["Content-Type"].startswith(kind)


@pytest.mark.parametrize("sent,kept", [
    ("../../evil.wav", "evil"), ("/etc/passwd.wav", "passwd"), ("..\\..\\windows.wav", "windows"),
    ("nul\x00byte.wav", "nulbyte"), ("\u202ewav.exe", "wav"), ("...", "untitled"), ("", "untitled"),
    ("a" * 300 + ".wav", "a" * 176),
])
def test_sent_names_never_make_paths(server, tmp_path, lib, sent, kept):
    assert len(safe_name(sent).encode()) <= 180
    status, _, body = upload(server, wav_bytes(1.0), sent)
    job = json.loads(body)
    assert status == 201 and "/" not in job["name"] and "\\" not in job["name"] and "\x00" not in job["name"]
    assert wait_ended(server, job["id"])[job["id"]]["state"] == "done"
    assert files_in(lib) == [f"{kept}/{stem}.wav" for stem in sorted(STEMS)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib"]  # nothing beside the library
    assert pending_uploads(server) == []


def test_uploads_an_app_left_behind_are_removed_by_the_next_launch_not_a_running_ones(tmp_path):
    root = tmp_path / "lib" / ".uploads"
    killed = root / "0123abcd"  # a launch killed mid-upload: its lock died with it
    killed.mkdir(parents=True)
    (killed / LOCK).touch()
    (killed / "3f2a.wav.part").write_bytes(b"half a song")
    running = Uploads(root, 1 << 20)
    (running.folder / "queued.wav").write_bytes(b"a song waiting its turn")
    assert not killed.exists()
    second = Uploads(root, 1 << 20)  # a second app on the same library keeps the first's uploads
    assert (running.folder / "queued.wav").is_file() and second.folder != running.folder
    second.close()
    assert not second.folder.exists() and root.is_dir()
    running.close()
    assert not root.exists()


@pytest.fixture
def outside(tmp_path, lib):
    """A finished track 'song', a secret beside the library, a symlinked track leading to it and an upload."""
    write_track(lib / "song")
    (tmp_path / "secret").mkdir()
    write_track(tmp_path / "secret" / "private")
    (tmp_path / "secret.txt").write_text("secret")
    (lib / "linked").symlink_to(tmp_path / "secret" / "private")
    (lib / ".uploads").mkdir()
    (lib / ".uploads" / "pending.wav").write_bytes(wav_bytes(0.2))
    return lib


@pytest.mark.parametrize("path", [
    "/audio/song/../../secret.txt", "/audio/song/..%2f..%2fsecret.txt", "/audio/..%2fsecret%2fprivate/drums.wav",
    "/audio/%2e%2e/secret.txt", "/audio/linked/drums.wav", "/audio/.uploads/pending.wav", "/audio/song/%2Fetc%2Fpasswd",
    "/audio/song/%00drums.wav", "/audio/song/", "/audio/", "/audio/%2Fetc/passwd",
    "/download/song/../../secret.txt", "/download/..%2fsecret%2fprivate/stems.zip", "/download/linked/stems.zip",
    "/download/.uploads/stems.zip", "/download/%2e%2e/stems.zip", "/download/song/", "/download/song/drums.wav",
    "/download/song/stems.zip/..", "/download/", "/static/../server.py", "/static/%2e%2e%2fserver.py", "/static/index.html",
    "/static/app.js", "/static/", "/api/../server.py", "/api/tracks/../../secret.txt", "/api/jobs/1", "/api/upload",
    "/etc/passwd", "//etc/passwd", "/song/drums.wav", "/.uploads/pending.wav", "/index.html/..",
])
def test_refused_paths_are_404(outside, server, path):
    status, _, body = request(server, path)
    assert status == 404 and b"secret" not in body and b"RIFF" not in body


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH"])
def test_get_head_and_post_only(server, method):
    status, headers, _ = request(server, "/api/upload", method, {"X-Stems-Token": server.token})
    assert status == 405 and headers["Allow"] == "GET, HEAD, POST"


def test_library_lists_earlier_tracks_and_downloads_them(outside, server):
    listed = json.loads(request(server, "/api/tracks")[2])
    assert [t["key"] for t in listed["tracks"]] == ["song"]  # not the symlink leading out, not .uploads
    status, headers, body = request(server, "/download/song/stems.zip")
    assert status == 200 and "song (stems).zip" in headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert sorted(archive.namelist()) == [f"song/{stem}.wav" for stem in sorted(STEMS)]
        assert archive.read("song/bass.wav") == (outside / "song" / "bass.wav").read_bytes()
    assert request(server, "/download/song/stems.zip", "HEAD")[2] == b""
    status, headers, body = request(server, "/download/song/stem.mp4")
    assert status == 200 and body[4:8] == b"ftyp" and headers["Content-Disposition"].startswith('attachment; filename="song.stem.mp4"')
    assert request(server, "/download/song/stem.mp4")[2] == body  # made once
    assert sorted(p.name for p in outside.iterdir()) == [".uploads", "linked", "song"]  # made aside, not in the library


def test_tracks_separated_meanwhile_and_bad_folders(server, lib):
    assert json.loads(request(server, "/api/tracks")[2]) == {"tracks": [], "problems": []}
    write_track(lib / "later")  # e.g. by `stems separate` while the app runs
    write_track(lib / "twice")
    sf.write(lib / "twice" / "vocals.flac", synth(0.1).T, RATE)
    assert request(server, "/audio/later/drums.wav")[0] == 200
    listed = json.loads(request(server, "/api/tracks")[2])
    assert [t["key"] for t in listed["tracks"]] == ["later"] and "several vocals stems" in listed["problems"][0]


def test_delete_removes_the_stems_only(outside, server):
    (outside / "song" / "notes.txt").write_text("mine")
    status, _, body = request(server, "/api/tracks/song/delete", "POST", {"X-Stems-Token": server.token})
    assert status == 200 and json.loads(body) == {"deleted": "song"}
    assert sorted(p.name for p in (outside / "song").iterdir()) == ["notes.txt"]
    assert json.loads(request(server, "/api/tracks")[2])["tracks"] == []
    assert request(server, "/api/tracks/song/delete", "POST", {"X-Stems-Token": server.token})[0] == 404


def test_dj_stem_file_job(server, lib):
    request(server, "/api/settings", "POST", {"X-Stems-Token": server.token},
            json.dumps({"model": "tiny", "outputs": "dj", "format": "wav"}))
    job = json.loads(upload(server, wav_bytes(1.0), "set.wav")[2])
    done = wait_ended(server, job["id"])[job["id"]]
    assert done["state"] == "done" and done["track"] == "set.stem.mp4" and files_in(lib) == ["set.stem.mp4"]
    (track,) = json.loads(request(server, "/api/tracks")[2])["tracks"]
    assert track["stem_file"] == "/download/set.stem.mp4/stem.mp4"
    assert request(server, track["stem_file"])[2] == (lib / "set.stem.mp4").read_bytes()


def test_bad_options_are_one_line(tmp_path, tiny_checkpoint):
    for args, code, line in ((["--max-upload-mb", "0"], 2, "--max-upload-mb 0"), (["--port", "70000"], 2, "--port 70000"),
                             (["--checkpoint", str(tmp_path / "none.onnx")], 1, "model file not found")):
        done = CliRunner().invoke(app, ["app", "--out", str(tmp_path / "lib"), "--no-open", *args])
        assert done.exit_code == code and line in done.output and len(done.output.strip().splitlines()) == 1


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_cancels_the_running_job_and_keeps_finished_ones(tmp_path, tiny_checkpoint, signum, status):
    lib = tmp_path / "lib"
    process = subprocess.Popen([EXE, "app", "--out", str(lib), "--port", "0", "--no-open", "--checkpoint", str(tiny_checkpoint)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline()
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\n", url)
        assert match, url
        page = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
        page.request("GET", "/")
        token = re.search(rb'name="stems-token" content="([^"]+)"', page.getresponse().read()).group(1).decode()

        def send(name, seconds):
            page.request("POST", "/api/upload", wav_bytes(seconds), {"X-Stems-Token": token, "X-Filename": name})
            return json.loads(page.getresponse().read())["id"]

        def job(number):
            page.request("GET", "/api/jobs")
            return next(j for j in json.loads(page.getresponse().read())["jobs"] if j["id"] == number)

        first = send("first.wav", 1.0)
        wait_for(lambda: job(first)["state"] == "done", 60)
        second = send("long.wav", 240.0)
        wait_for(lambda: job(second)["progress"] > 0, 60)
        process.send_signal(signum)
        assert process.wait(timeout=60) == status
    finally:
        process.kill()
        process.wait()
    assert f"stopped by {signal.Signals(signum).name}" in process.stderr.read()
    assert process.stdout.read() == ""  # the URL was the only line
    assert files_in(lib) == [f"first/{stem}.wav" for stem in sorted(STEMS)]  # long.wav: not a partial file left
