"""``ig fetch-assets`` and ``require`` against local sources: ``file://`` URLs and an HTTP server on
loopback (with and without Range support, and a fake Hugging Face hub): pinned revisions and
hashes, ``--verify``, one-line errors, and the refusal of unpinned assets."""

import functools
import hashlib
import http.server
import io
import json
import threading
from pathlib import Path

import pytest

import ig.assets
from ig.assets import COMMIT, REGISTRY, SHA256, Asset, AssetFile, fetch, require
from ig.cli import main
from ig.errors import IGError


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, honouring ``Range: bytes=N-`` when the server's ``ranges`` flag is set."""

    def log_message(self, *args):
        pass

    def send_head(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        header = self.headers.get("Range")
        if not (self.server.ranges and header):
            return super().send_head()
        data = Path(self.translate_path(self.path)).read_bytes()
        start = int(header.removeprefix("bytes=").rstrip("-"))
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        return io.BytesIO(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    httpd.requests, httpd.ranges, httpd.root = [], True, root
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _payload(n=300_000):
    return bytes(range(256)) * (n // 256)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _asset(url, data):
    return Asset("test", "test file", files=(AssetFile("test/blob.bin", _sha(data), len(data), url),))


REVISION = "0123456789abcdef0123456789abcdef01234567"


def _hub(server, files: dict[str, bytes], revision: str = REVISION) -> None:
    """Serve ``files`` as the Hugging Face repo org/repo at ``revision`` (and ``main`` pointing there)."""
    for name, data in files.items():
        path = server.root / "org" / "repo" / "resolve" / revision / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    api = server.root / "api" / "models" / "org" / "repo"
    (api / "revision").mkdir(parents=True, exist_ok=True)
    (api / "revision" / "main").write_text(json.dumps({"sha": revision}))
    listing = [{"type": "directory", "path": "SiT"}] + [
        {"type": "file", "path": name, "size": len(data), "lfs": {"oid": _sha(data)}} for name, data in files.items()
    ]
    (api / "tree" / revision).mkdir(parents=True, exist_ok=True)
    (api / "tree" / revision / "SiT").write_text(json.dumps(listing))


def test_registry_pins_every_value_it_has_and_names_what_it_lacks():
    for name, asset in REGISTRY.items():
        assert asset.name == name and not asset.path.startswith("/")
        assert asset.hf_revision is None or COMMIT.fullmatch(asset.hf_revision), (name, "a commit, never a branch")
        for file in asset.files:
            assert file.sha256 is None or SHA256.fullmatch(file.sha256), (name, file.path)
            assert (file.url is None) == bool(asset.hf_repo), (name, file.path)
            assert asset.hf_repo or file.url.startswith(("https://", "http://"))
    # what the registry could pin from public sources; the rest is listed by `--list` as unpinned
    for name in ("inception-fid", "fashion-mnist"):
        assert REGISTRY[name].missing_pins() == [], name
    assert REGISTRY["sd-vae-ft-ema"].hf_revision == "f04b2c4b98319346dad8c65879f680b1997b204a"
    assert REGISTRY["ig-sit-xl2"].missing_pins() == ["revision", "file names"]
    assert REGISTRY["inception-fid"].path == "torch-fidelity/weights-inception-2015-12-05-6726825d.pth"
    assert REGISTRY["sd-vae-ft-ema"].path == "hf/stabilityai/sd-vae-ft-ema"
    assert not REGISTRY["fashion-mnist"].cluster


def test_require_names_the_file_and_the_command(tmp_path):
    with pytest.raises(IGError) as err:
        require("inception-fid", tmp_path)
    message = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in message and "\n" not in message
    assert f"ig fetch-assets --only inception-fid --assets-dir {tmp_path}" in message
    with pytest.raises(IGError, match="unknown asset 'nope'"):
        require("nope", tmp_path)


def test_file_url_fetch_is_verified_and_rerun_safe(tmp_path):
    data = _payload()
    (tmp_path / "src.bin").write_bytes(data)
    asset = _asset((tmp_path / "src.bin").as_uri(), data)
    assets = tmp_path / "assets"
    assert fetch(asset, assets, progress=False) == [assets / "test/blob.bin"]
    assert (assets / "test/blob.bin").read_bytes() == data
    assert fetch(asset, assets, progress=False) == []  # complete: skipped
    (assets / "test/blob.bin").write_bytes(data[:10])  # damaged: fetched again
    assert fetch(asset, assets, progress=False) == [assets / "test/blob.bin"]
    assert (assets / "test/blob.bin").read_bytes() == data
    assert sorted(p.name for p in (assets / "test").iterdir()) == ["blob.bin"]


def test_bad_download_leaves_nothing(tmp_path):
    (tmp_path / "src.bin").write_bytes(b"wrong bytes")
    asset = Asset("t", "t", files=(AssetFile("t/x.bin", _sha(b"right bytes"), url=(tmp_path / "src.bin").as_uri()),))
    with pytest.raises(IGError, match=f"downloaded file is bad .sha256 {_sha(b'wrong bytes')} != expected"):
        fetch(asset, tmp_path / "assets", progress=False)
    assert list((tmp_path / "assets" / "t").iterdir()) == []


@pytest.mark.parametrize("ranges", [True, False])
def test_partial_download_resumes_or_restarts(tmp_path, server, ranges):
    server.ranges = ranges
    data = _payload()
    (server.root / "blob.bin").write_bytes(data)
    asset = _asset(f"{server.url}/blob.bin", data)
    part = tmp_path / "assets" / "test" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100_000] if ranges else b"x" * 100_000)  # what a killed run left
    fetch(asset, tmp_path / "assets", progress=False)
    assert (tmp_path / "assets" / "test" / "blob.bin").read_bytes() == data and not part.exists()
    assert server.requests == [("/blob.bin", "bytes=100000-")]


def test_complete_part_file_is_renamed_without_download(tmp_path, server):
    data = _payload()
    (server.root / "blob.bin").write_bytes(data)
    part = tmp_path / "assets" / "test" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    fetch(_asset(f"{server.url}/blob.bin", data), tmp_path / "assets", progress=False)
    assert (tmp_path / "assets" / "test" / "blob.bin").read_bytes() == data and server.requests == []


def test_hugging_face_files_come_from_the_pinned_revision(tmp_path, server):
    data, config = _payload(5000), b'{"a": 1}'
    _hub(server, {"SiT/ckpt.pt": data, "SiT/config.json": config})
    files = (AssetFile("SiT/ckpt.pt", _sha(data), len(data)), AssetFile("SiT/config.json", _sha(config)))
    asset = Asset("ig-test", "test", files=files, hf_repo="org/repo", hf_revision=REVISION, hf_folder="SiT")
    fetch(asset, tmp_path, hf_endpoint=server.url, progress=False)
    assert (tmp_path / "hf/org/repo/SiT/ckpt.pt").read_bytes() == data
    assert asset.path == "hf/org/repo/SiT" and (tmp_path / "hf/org/repo/SiT/config.json").read_bytes() == config
    assert sorted(path for path, _ in server.requests) == [
        f"/org/repo/resolve/{REVISION}/SiT/ckpt.pt",
        f"/org/repo/resolve/{REVISION}/SiT/config.json",
    ]  # never `main`, never the listing API


def test_unpinned_assets_are_refused_in_one_line_or_fetched_with_the_pins_printed(tmp_path, server, caplog):
    data = _payload(5000)
    _hub(server, {"SiT/ckpt.pt": data})
    asset = Asset("ig-test", "test", hf_repo="org/repo", hf_folder="SiT")
    with pytest.raises(IGError) as err:
        fetch(asset, tmp_path, hf_endpoint=server.url, progress=False)
    assert "not pinned in ig/assets.py (no revision, file names)" in str(err.value) and "\n" not in str(err.value)
    assert server.requests == []
    with caplog.at_level("WARNING", logger="ig.assets"):
        fetched = fetch(asset, tmp_path, hf_endpoint=server.url, allow_unpinned=True, progress=False)
    assert fetched == [tmp_path / "hf/org/repo/SiT/ckpt.pt"]
    assert f"pin hf_revision='{REVISION}'" in caplog.text
    assert f"pin SiT/ckpt.pt sha256={_sha(data)} size={len(data)}" in caplog.text


def _fake_registry(monkeypatch, server, data: bytes) -> None:
    (server.root / "test").mkdir()
    (server.root / "test" / "blob.bin").write_bytes(data)
    monkeypatch.setitem(ig.assets.REGISTRY, "test", _asset(f"{server.url}/test/blob.bin", data))


def test_cli_verify_checks_an_existing_folder_and_fails_in_one_line(tmp_path, server, monkeypatch, capsys):
    data = _payload(5000)
    _fake_registry(monkeypatch, server, data)
    main(["fetch-assets", "--only", "test", "--assets-dir", str(tmp_path)])
    requests = len(server.requests)
    main(["fetch-assets", "--only", "test", "--verify", "--assets-dir", str(tmp_path)])  # good: exit 0
    (tmp_path / "test/blob.bin").write_bytes(b"x" * len(data))  # same size, other bytes
    for damage in ("sha256 ", "(missing)"):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(["fetch-assets", "--only", "test", "--verify", "--assets-dir", str(tmp_path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1, err
        assert (
            err[0].startswith(f"ig fetch-assets: error: 1 problem(s) in {tmp_path}: test/blob.bin ")
            and damage in err[0]
        )
        (tmp_path / "test/blob.bin").unlink(missing_ok=True)
    assert len(server.requests) == requests  # --verify downloads nothing


def test_cli_lists_and_reports_failures_in_one_line(tmp_path, server, capsys):
    main(["fetch-assets", "--list", "--assets-dir", str(tmp_path)])
    listed = capsys.readouterr().out
    assert all(name in listed for name in REGISTRY) and "missing" in listed
    assert "ig-sit-xl2" in listed and "UNPINNED: no revision, file names" in listed
    (server.root / "torch-fidelity").mkdir()
    (server.root / "torch-fidelity" / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"not the weights")
    with pytest.raises(SystemExit) as exit_:
        main(["fetch-assets", "--only", "inception-fid", "--mirror", server.url, "--assets-dir", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ig fetch-assets: error: 1 asset(s) failed: inception-fid (") and "size 15 != expected" in err
    with pytest.raises(SystemExit):
        main(["fetch-assets", "--only", "ig-sit-xl2", "--assets-dir", str(tmp_path)])
    assert "ig-sit-xl2 (asset 'ig-sit-xl2' is not pinned" in capsys.readouterr().err
