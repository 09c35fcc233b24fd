"""spyolo download voc: its own logic against small archives served on 127.0.0.1 (nothing is downloaded
from the internet): a whole run, a cut connection resumed, a wrong md5, a root holding other things,
a hostile archive."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spyolo.cli import download as download_cli
from spyolo.data.download import RECORD, WORK, Archive, download_voc, voc_archives
from spyolo.errors import DatasetError


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _voc_tar(year: str, split: str, ids: list[str]) -> bytes:
    base = f"VOCdevkit/VOC{year}"
    members = {f"{base}/ImageSets/Main/{split}.txt": "".join(f"{i}\n" for i in ids).encode()}
    for i in ids:
        members[f"{base}/JPEGImages/{i}.jpg"] = b"\xff\xd8 image " + i.encode() + b" \xff\xd9"
        members[f"{base}/Annotations/{i}.xml"] = f"<annotation><filename>{i}.jpg</filename></annotation>".encode()
    return _tar(members)


class _Server:
    """Files over HTTP on 127.0.0.1, with range requests; ``cut[name] = n`` sends the full length in the header
    but closes the connection after ``n`` bytes (once)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                data = server.files.get(name)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut:
                    body = body[: server.cut.pop(name)]
                self.wfile.write(body)
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def archive(self, name: str, data: bytes, year: str, md5: str | None = None) -> Archive:
        self.files[name] = data
        return Archive(self.url(name), name, md5 or hashlib.md5(data).hexdigest(), year)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def archives(server: _Server) -> list[Archive]:
    """VOC-shaped archives: 2007 trainval and test (one folder, two archives) and 2012 trainval."""
    return [server.archive("VOCtrainval_2007.tar", _voc_tar("2007", "trainval", ["000001", "000002"]), "2007"),
            server.archive("VOCtest_2007.tar", _voc_tar("2007", "test", ["000003"]), "2007"),
            server.archive("VOCtrainval_2012.tar", _voc_tar("2012", "trainval", ["2012_000001"]), "2012")]


def test_a_whole_download(tmp_path: Path, server: _Server, archives: list[Archive]) -> None:
    root = tmp_path / "voc"
    devkit = download_voc(root, archives, progress=False)
    assert devkit == root / "VOCdevkit"
    assert sorted(p.name for p in (devkit / "VOC2007" / "JPEGImages").iterdir()) == ["000001.jpg", "000002.jpg",
                                                                                       "000003.jpg"]
    assert (devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text() == "000003\n"
    assert (devkit / "VOC2012" / "Annotations" / "2012_000001.xml").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["VOCdevkit", RECORD]  # archives and work folder removed
    assert json.loads((root / RECORD).read_text())["years"] == {"2007": "installed", "2012": "installed"}
    asked = len(server.requests)
    assert download_voc(root, archives, progress=False) == devkit  # done: nothing downloaded again
    assert len(server.requests) == asked


def test_a_cut_connection_resumes_and_nothing_half_done_looks_complete(tmp_path: Path, server: _Server,
                                                                        archives: list[Archive]) -> None:
    root = tmp_path / "voc"
    server.cut["VOCtest_2007.tar"] = 1000
    with pytest.raises(DatasetError, match=r"VOCtest_2007.tar: the download was cut after 1000 of \d+ bytes; run "
                                           r"the command again to resume"):
        download_voc(root, archives, progress=False)
    assert not (root / "VOCdevkit").exists()  # VOC2007 needs both archives: nothing in place
    assert (root / WORK / "VOCtrainval_2007.tar").is_file()
    assert (root / WORK / "VOCtest_2007.tar.part").stat().st_size == 1000
    download_voc(root, archives, progress=False)
    assert ("VOCtest_2007.tar", "bytes=1000-") in server.requests  # continued, not started again
    assert server.requests.count(("VOCtrainval_2007.tar", None)) == 1  # the finished archive was kept
    assert (root / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000003.jpg").is_file()


def test_an_interrupted_extraction_or_move_is_finished_by_the_next_run(tmp_path: Path, server: _Server,
                                                                       archives: list[Archive],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import spyolo.data.download as download

    root = tmp_path / "voc"
    real_replace = download.os.replace
    calls = []

    def stop_at_the_move(src, dst):
        calls.append(dst)
        if str(dst).endswith("VOC2012"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(download.os, "replace", stop_at_the_move)
    with pytest.raises(KeyboardInterrupt):
        download_voc(root, archives, progress=False)
    monkeypatch.undo()
    assert (root / "VOCdevkit" / "VOC2007").is_dir() and not (root / "VOCdevkit" / "VOC2012").exists()
    assert json.loads((root / RECORD).read_text())["years"] == {"2007": "installed", "2012": "installing"}
    download_voc(root, archives, progress=False)
    assert (root / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2012_000001.jpg").is_file()


def test_a_wrong_md5_extracts_nothing(tmp_path: Path, server: _Server) -> None:
    root = tmp_path / "voc"
    bad = server.archive("VOCtrainval_2012.tar", _voc_tar("2012", "trainval", ["a"]), "2012", md5="0" * 32)
    with pytest.raises(DatasetError) as info:
        download_voc(root, [bad], progress=False)
    message = str(info.value)
    assert message.startswith(f"{bad.url}: md5 ") and f"expected {'0' * 32}" in message and "\n" not in message
    assert "nothing was extracted" in message
    assert not (root / "VOCdevkit").exists() and not list((root / WORK).iterdir())  # the bad file removed


def test_a_root_holding_other_things_is_refused_untouched(tmp_path: Path, server: _Server,
                                                          archives: list[Archive]) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    (root / "thesis.tex").write_text("keep")
    with pytest.raises(DatasetError, match=r"mine: holds thesis.tex; spyolo download puts VOC into a new or empty"):
        download_voc(root, archives, progress=False)
    assert [p.name for p in root.iterdir()] == ["thesis.tex"] and not server.requests
    (root / "thesis.tex").unlink()
    (root / "VOCdevkit" / "VOC2007").mkdir(parents=True)  # a user's own VOCdevkit
    with pytest.raises(DatasetError, match="VOCdevkit: exists and was not written by spyolo download"):
        download_voc(root, archives, progress=False)
    file_root = tmp_path / "a-file"
    file_root.write_text("")
    with pytest.raises(DatasetError, match="a-file: not a folder"):
        download_voc(file_root, archives, progress=False)


def test_a_hostile_archive_writes_nothing_outside(tmp_path: Path, server: _Server) -> None:
    root = tmp_path / "voc"
    evil = server.archive("evil.tar", _tar({"VOCdevkit/VOC2007/ok.txt": b"x", "../../outside.txt": b"pwned"}), "2007")
    with pytest.raises(DatasetError, match="evil.tar: cannot extract"):
        download_voc(root, [evil], progress=False)
    assert not (tmp_path / "outside.txt").exists() and not (root / "outside.txt").exists()
    assert not (root / "VOCdevkit").exists()
    odd = server.archive("odd.tar", _tar({"something/else.txt": b"x"}), "2012")
    with pytest.raises(DatasetError, match="odd.tar: no VOCdevkit/VOC2012 inside"):
        download_voc(tmp_path / "voc2", [odd], progress=False)


def test_the_command(tmp_path: Path, server: _Server, archives: list[Archive], monkeypatch: pytest.MonkeyPatch,
                     capsys) -> None:
    import spyolo.data.download as download

    monkeypatch.setattr(download, "voc_archives", lambda years, mirror=None: [a for a in archives if a.year in years])
    root = tmp_path / "voc"
    assert download_cli.main(["voc", "--root", str(root), "--years", "2012", "--no-progress"]) == 0
    assert f"VOC2012 in {root / 'VOCdevkit'}: use data.root={root / 'VOCdevkit'}" in capsys.readouterr().out
    assert not (root / "VOCdevkit" / "VOC2007").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    assert download_cli.main(["voc", "--root", str(tmp_path / "busy"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "holds x" in err


def test_the_archives_are_torchvisions() -> None:
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    found = voc_archives()
    assert [(a.filename, a.year) for a in found] == [("VOCtrainval_06-Nov-2007.tar", "2007"),
                                                      ("VOCtest_06-Nov-2007.tar", "2007"),
                                                      ("VOCtrainval_11-May-2012.tar", "2012")]
    assert {a.md5 for a in found} == {DATASET_YEAR_DICT[k]["md5"] for k in ("2007", "2007-test", "2012")}
    mirrored = voc_archives(["2012"], mirror="http://127.0.0.1:1/copy/")
    assert mirrored[0].url == "http://127.0.0.1:1/copy/VOCtrainval_11-May-2012.tar"
    with pytest.raises(DatasetError, match="VOC year '2010'"):
        voc_archives(["2010"])
