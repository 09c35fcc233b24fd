"""Named weights: the registry, verified downloads into the cache and their conversion, against a local
HTTP server on 127.0.0.1 (never the internet): a good file, a redirect, a connection cut mid-file, a
wrong checksum, a 404, no server at all, and files put in the cache by hand."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import socket
import threading
from pathlib import Path

import pytest
import torch
from test_darknet import QUARTER, cfg_text, random_twin, write_weights
from test_sfptt import release_state_dict

import spyolo.hub
from spyolo.checkpoint import load_checkpoint
from spyolo.cli import demo as demo_cli
from spyolo.cli import eval as eval_cli
from spyolo.cli import export as export_cli
from spyolo.cli import train as train_cli
from spyolo.cli import weights as weights_cli
from spyolo.config import save_config
from spyolo.data.voc import VOC_CLASSES
from spyolo.errors import DownloadError
from spyolo.hub import REGISTRY, NamedWeights, RemoteFile, resolve_weights
from spyolo.hub.fetch import checkpoint_path, download_path, file_checksum

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "yolov4-tiny"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Server:
    """Serves ``files`` (name -> bytes) under ``/good/<name>``, ``/redirect/<name>`` (302 to good),
    ``/cut/<name>`` (full Content-Length, half the bytes, then the connection closes) and
    ``/wrong/<name>`` (other bytes of the same size); anything else is a 404. Counts the requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                server.hits.append(self.path)
                _, how, name = (self.path.split("/", 2) + ["", ""])[:3]
                data = server.files.get(name)
                if data is None or how not in ("good", "redirect", "cut", "wrong"):
                    self.send_error(404, "Not Found")
                    return
                if how == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"/good/{name}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = bytes(b ^ 0x55 for b in data) if how == "wrong" else data
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if how != "cut" else body[: len(body) // 2])
                self.wfile.flush()
                if how == "cut":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SPYOLO_CACHE", str(folder))
    return folder


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def release_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(release_state_dict(), buffer)
    return buffer.getvalue()


def sfptt_entry(url: str, data: bytes, name: str = "test-sfptt") -> NamedWeights:
    remote = RemoteFile("trained_weight_8step.pth", url, f"git-sha1:{git_sha1(data)}")
    return NamedWeights(name, "sfptt", "a test release", "a local server", "MIT", "~1 MB", (remote,))


def use(monkeypatch, *entries: NamedWeights) -> None:
    monkeypatch.setattr(spyolo.hub, "REGISTRY", {**REGISTRY, **{e.name: e for e in entries}})


def run_cli(module, capsys, *argv: str) -> tuple[int, str, str]:
    code = module.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_named_release_downloads_verifies_converts_and_caches(server, cache, monkeypatch, capsys, tmp_path) -> None:
    data = release_bytes()
    server.files["w.pth"] = data
    use(monkeypatch, sfptt_entry(f"{server.url}/redirect/w.pth", data))  # a redirect, as GitHub's raw URLs
    code, out, err = run_cli(weights_cli, capsys, "test-sfptt", "--no-progress")
    assert code == 0, err
    entry = spyolo.hub.REGISTRY["test-sfptt"]
    converted = checkpoint_path(entry)
    assert out.strip() == f"test-sfptt: {converted}"
    assert files_in(cache) == ["checkpoints/test-sfptt.pt", "downloads/test-sfptt/trained_weight_8step.pth"]
    assert download_path(entry, entry.files[0]).read_bytes() == data
    ckpt = load_checkpoint(converted)
    assert ckpt["class_names"] == list(VOC_CLASSES) and ckpt["config"]["model"]["timesteps"] == 8
    assert ckpt["run"]["weights_name"] == "test-sfptt" and ckpt["run"]["unused"] == ["network.yolo_tau1",
                                                                                    "network.yolo_tau2"]
    assert server.hits == ["/redirect/w.pth", "/good/w.pth"]
    # later uses read the cache: the demo by name, no request
    photo = tmp_path / "photo.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(photo), (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8))
    code, out, err = run_cli(demo_cli, capsys, "--weights", "test-sfptt", "--source", str(photo), "--out",
                             str(tmp_path / "demo"), "--no-progress", "--conf", "0.9")
    assert code == 0, err
    assert "model: SPYv4 20 classes, input 416px, T=8" in out and (tmp_path / "demo" / "photo.json").is_file()
    assert len(server.hits) == 2
    code, out, _ = run_cli(weights_cli, capsys)
    assert f"cached: {converted}" in out and f"cache: {cache}" in out
    monkeypatch.chdir(tmp_path)  # an export by name lands here, not in the cache
    code, out, err = run_cli(export_cli, capsys, "--weights", "test-sfptt")
    assert code == 0, err
    assert (tmp_path / "test-sfptt_export.pt").is_file() and files_in(cache) == [
        "checkpoints/test-sfptt.pt", "downloads/test-sfptt/trained_weight_8step.pth"]
    # the release's file itself where a checkpoint is expected: convert it first, or use the name
    code, _, err = run_cli(eval_cli, capsys, "--weights", str(download_path(entry, entry.files[0])))
    assert code == 2 and "the sFPTT release's SPYv4 state dict, not a spyolo checkpoint; convert it first" in err
    # an entry whose file changed: the converted checkpoint is stale, and the cached download is not the
    # new file, which spyolo says and leaves to the user
    newer = dataclasses.replace(entry, files=(dataclasses.replace(entry.files[0], checksum="git-sha1:" + "0" * 40),))
    use(monkeypatch, newer)
    code, _, err = run_cli(weights_cli, capsys, "test-sfptt")
    assert code == 2 and "does not delete it: remove it to download the file again" in error_line(err)
    assert download_path(entry, entry.files[0]).read_bytes() == data and len(server.hits) == 2


@pytest.mark.parametrize("how", ["cut", "wrong", "404", "offline"])
def test_failed_downloads_leave_nothing_and_say_what_to_do(how, server, cache, monkeypatch, capsys, tmp_path,
                                                           make_tiny_config) -> None:
    data = release_bytes()
    server.files["w.pth"] = data
    url = {"cut": f"{server.url}/cut/w.pth", "wrong": f"{server.url}/wrong/w.pth", "404": f"{server.url}/none",
           "offline": f"{closed_port_url()}/w.pth"}[how]
    entry = sfptt_entry(url, data)
    use(monkeypatch, entry)
    code, _, err = run_cli(eval_cli, capsys, "--weights", "test-sfptt", "--no-progress")
    assert code == 2
    line = error_line(err)
    target = download_path(entry, entry.files[0])
    assert "test-sfptt: " in line and url in line and git_sha1(data) in line and str(target) in line
    reason = {"cut": f"(the connection closed after {len(data) // 2:,} of {len(data):,} bytes); nothing was kept",
              "wrong": "does not verify (its git blob SHA-1 is", "404": "(HTTP 404 Not Found); nothing was kept",
              "offline": "(no connection: "}[how]
    assert reason in line, line
    assert files_in(cache) == []  # nothing half-written, nothing unverified
    # the same through model.init_from and train.distill_from: one line that names the key
    config = save_config(make_tiny_config({"train.epochs": 1}), tmp_path / "c.yaml")
    for key in ("model.init_from", "train.distill_from"):
        code, _, err = run_cli(train_cli, capsys, "--config", str(config), "--run-dir", str(tmp_path / "run"),
                               f"{key}=test-sfptt")
        assert code == 2 and error_line(err).startswith(f"error: {key}: test-sfptt: "), err
        assert not (tmp_path / "run").exists() and files_in(cache) == []


def test_files_put_in_the_cache_by_hand_are_verified(cache, monkeypatch, capsys) -> None:
    data = release_bytes()
    entry = sfptt_entry(f"{closed_port_url()}/w.pth", data)  # offline: the file must come from the cache
    use(monkeypatch, entry)
    target = download_path(entry, entry.files[0])
    target.parent.mkdir(parents=True)
    target.write_bytes(data[:-10] + b"0123456789")  # the right size, other bytes
    code, _, err = run_cli(weights_cli, capsys, "test-sfptt")
    assert code == 2 and "does not delete it" in error_line(err) and str(target) in err
    assert target.read_bytes() != data and files_in(cache) == ["downloads/test-sfptt/trained_weight_8step.pth"]
    target.write_bytes(data)
    code, out, err = run_cli(weights_cli, capsys, "test-sfptt")
    assert code == 0, err
    assert files_in(cache) == ["checkpoints/test-sfptt.pt", "downloads/test-sfptt/trained_weight_8step.pth"]
    # a checkpoint in the cache that spyolo did not convert is neither used nor replaced
    converted = checkpoint_path(entry)
    torch.save({"model": {}, "config": {}}, converted)
    code, _, err = run_cli(weights_cli, capsys, "test-sfptt")
    assert code == 2 and "not the checkpoint spyolo converts for test-sfptt" in error_line(err)


def test_named_darknet_weights_with_cfg_and_names(server, cache, monkeypatch, capsys, tmp_path) -> None:
    names = ["person", "bicycle", "aeroplane"]
    weights = write_weights(tmp_path / "d.weights", random_twin(classes=3)).read_bytes()
    cfg, names_text = cfg_text(QUARTER, 3).encode(), ("\n".join(names) + "\n").encode()
    server.files.update({"d.weights": weights, "d.cfg": cfg, "coco.names": names_text})
    md5, sha = hashlib.md5(weights).hexdigest(), hashlib.sha256
    entry = NamedWeights("test-darknet", "darknet", "tiny", "local server", "public domain", "1 MB", (
        RemoteFile("t.weights", f"{server.url}/good/d.weights", f"md5:{md5}", len(weights)),
        RemoteFile("t.cfg", f"{server.url}/redirect/d.cfg", f"sha256:{sha(cfg).hexdigest()}", len(cfg)),
        RemoteFile("t.names", f"{server.url}/good/coco.names", f"sha256:{sha(names_text).hexdigest()}"),
    ))
    use(monkeypatch, entry)
    path = resolve_weights("test-darknet", progress=False)
    ckpt = load_checkpoint(path)
    assert ckpt["class_names"] == names and ckpt["config"]["model"]["kind"] == "ann"
    assert ckpt["config"]["model"]["scale_xy"] == 1.05 and ckpt["run"]["weights_name"] == "test-darknet"
    assert resolve_weights("test-darknet") == path and len(server.hits) == 4  # 3 files, one redirect
    # a file of the wrong size is refused before it is hashed
    bad = dataclasses.replace(entry, name="test-darknet2", files=(dataclasses.replace(entry.files[0], size=12),
                                                                  *entry.files[1:]))
    use(monkeypatch, bad)
    with pytest.raises(DownloadError, match="it holds .* bytes, the file has 12"):
        resolve_weights("test-darknet2", progress=False)
    assert not download_path(bad, bad.files[0]).exists()


def test_names_and_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DownloadError, match="sfptt: no such file, and not a named weights file"):
        resolve_weights("sfptt")
    assert resolve_weights("runs/x/best.pt") == Path("runs/x/best.pt")  # a path: its reader reports it
    (tmp_path / "sfptt-voc").write_bytes(b"a user's file")
    assert resolve_weights("sfptt-voc") == Path("sfptt-voc")  # an existing file wins over a name
    local = resolve_weights("spyv4-synthetic")
    assert local.name == "spyv4_synthetic.pt" and local.is_file()


def test_the_registry() -> None:
    release = REGISTRY["sfptt-voc"].files[0]
    assert release.url == ("https://github.com/byin-cwi/sFPTT/raw/v1.0.0/fptt/yolo_demo_show/model/"
                           "trained_weight_8step.pth")
    assert release.checksum == "git-sha1:ab827729380fbda06eea34e4dada7580be79408a"
    darknet = REGISTRY["yolov4-tiny-coco"].files
    assert darknet[0].checksum == "md5:8911bf808aed305d6854c4ea48fcc731" and darknet[0].size == 24_251_276
    assert [f.filename for f in darknet] == ["yolov4-tiny.weights", "yolov4-tiny.cfg", "yolov4-tiny.names"]
    for entry in REGISTRY.values():
        assert entry.kind in ("sfptt", "darknet", "local") and entry.licence and entry.source and entry.size
        assert all(f.url.startswith("https://") for f in entry.files)
    if REAL.is_dir():  # the originals: the checksums the registry states
        for remote, name in zip(darknet, ("yolov4-tiny.weights", "yolov4-tiny.cfg", "coco.names")):
            assert file_checksum(REAL / name, remote.checksum_kind) == remote.digest, name
            assert (REAL / name).stat().st_size == remote.size
    assert git_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object of "hello\n"
