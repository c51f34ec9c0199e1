"""``ig fetch-assets`` and ``require`` against local sources: ``file://`` URLs and an HTTP server on
loopback (with and without Range support, and a fake Hugging Face file listing)."""

import functools
import hashlib
import http.server
import io
import json
import threading
from pathlib import Path

import pytest

from ig.assets import REGISTRY, Asset, AssetFile, fetch, require
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


def _asset(url, data, digest="sha256"):
    h = hashlib.new(digest, data).hexdigest()
    return Asset("test", "test file", files=(AssetFile(url, "test/blob.bin", len(data), f"{digest}:{h}"),))


def test_registry_is_well_formed():
    for name, asset in REGISTRY.items():
        assert asset.name == name and (asset.files or asset.hf_repo) and not asset.path.startswith("/")
        for file in asset.files:
            assert file.url.startswith("https://") or file.url.startswith("http://")
            assert file.digest is None or file.digest.split(":")[0] in ("sha256", "md5")
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
    asset = _asset((tmp_path / "src.bin").as_uri(), data, "md5")
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
    asset = Asset("t", "t", files=(AssetFile((tmp_path / "src.bin").as_uri(), "t/x.bin", digest="sha256:6726825d"),))
    with pytest.raises(IGError, match="downloaded file is bad .sha256 .* != expected 6726825d"):
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


def test_hugging_face_folder_is_listed_then_fetched(tmp_path, server):
    data, config = _payload(5000), b'{"a": 1}'
    listing = [
        {"type": "directory", "path": "SiT/sub"},
        {"type": "file", "path": "SiT/ckpt.pt", "size": len(data),
         "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}},
        {"type": "file", "path": "SiT/config.json", "size": len(config), "oid": "git-sha1-not-checked"},
    ]  # fmt: skip
    api = server.root / "api" / "models" / "org" / "repo" / "tree" / "main"
    api.mkdir(parents=True)
    (api / "SiT").write_text(json.dumps(listing))
    files = server.root / "org" / "repo" / "resolve" / "main" / "SiT"
    files.mkdir(parents=True)
    (files / "ckpt.pt").write_bytes(data)
    (files / "config.json").write_bytes(config)
    asset = Asset("ig-test", "test", hf_repo="org/repo", hf_folder="SiT")
    fetch(asset, tmp_path, hf_endpoint=server.url, progress=False)
    assert (tmp_path / "hf/org/repo/SiT/ckpt.pt").read_bytes() == data
    assert (tmp_path / "hf/org/repo/SiT/config.json").read_bytes() == config
    assert ("/api/models/org/repo/tree/main/SiT?recursive=true", None) in server.requests
    only = Asset("ig-test", "test", hf_repo="org/repo", hf_folder="SiT", hf_include=("ckpt.pt",))
    assert fetch(only, tmp_path / "other", hf_endpoint=server.url, progress=False) == [
        tmp_path / "other/hf/org/repo/SiT/ckpt.pt"
    ]
    absent = Asset("ig-test", "test", hf_repo="org/repo", hf_folder="SiT", hf_include=("ckpt.pt", "ema.pt"))
    with pytest.raises(IGError, match="lacks ema.pt; the repository may have changed"):
        fetch(absent, tmp_path / "other", hf_endpoint=server.url, progress=False)


def test_cli_lists_and_reports_failures_in_one_line(tmp_path, server, capsys):
    main(["fetch-assets", "--list", "--assets-dir", str(tmp_path)])
    listed = capsys.readouterr().out
    assert all(name in listed for name in REGISTRY) and "missing" in listed
    (server.root / "torch-fidelity").mkdir()
    (server.root / "torch-fidelity" / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"not the weights")
    with pytest.raises(SystemExit) as exit_:
        main(["fetch-assets", "--only", "inception-fid", "--mirror", server.url, "--assets-dir", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ig fetch-assets: error: 1 asset(s) failed: inception-fid (") and "6726825d" in err
    with pytest.raises(SystemExit):
        main(
            [
                "fetch-assets",
                "--only",
                "ig-sit-xl2",
                "--hf-endpoint",
                "http://127.0.0.1:9",
                "--assets-dir",
                str(tmp_path),
            ]
        )
    assert "ig-sit-xl2 (" in capsys.readouterr().err
