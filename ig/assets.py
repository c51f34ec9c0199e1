"""``ig fetch-assets``: the registry of downloadable files, and ``require`` for every loader.

Cluster jobs run offline (``HF_HUB_OFFLINE=1``). Everything they need that is not made by the
pipeline itself (autoencoder weights, the FID Inception, ADM's reference batch, released
checkpoints) is downloaded beforehand, once, into one assets folder by this command. Loaders
find their files with :func:`require`, which fails with one line naming the file and the
command that fetches it.

Downloads go to ``<file>.part`` and are renamed into place only after their size and hash check
out, so a file under its final name is always complete. A rerun skips complete files and
resumes a ``.part`` (HTTP Range) or starts it over when the server cannot resume.

Hugging Face files live under ``hf/<repo id>/`` in the assets folder; their sizes and sha256
come from the Hub's file listing at fetch time, so the registry need not copy them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ig.errors import IGError
from ig.utils.io import file_digest

log = logging.getLogger(__name__)

HF_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20


@dataclass(frozen=True)
class AssetFile:
    """One downloadable file."""

    url: str
    path: str  # relative to the assets folder
    size: int | None = None
    digest: str | None = None  # "sha256:<hex>" (a prefix is accepted, as torch.hub names) or "md5:<hex>"


@dataclass(frozen=True)
class Asset:
    """A named thing a run needs: direct ``files``, or files of a Hugging Face repo folder."""

    name: str
    description: str
    files: tuple[AssetFile, ...] = ()
    hf_repo: str | None = None
    hf_folder: str = ""  # a folder of hf_repo ("" = its root)
    hf_include: tuple[str, ...] = ()  # only these files of the folder (default: all of them)
    cluster: bool = True  # fetched by a plain `ig fetch-assets`

    @property
    def path(self) -> str:
        """What :func:`require` returns, relative to the assets folder (a file or a folder)."""
        if self.hf_repo:
            return "/".join(p for p in ("hf", self.hf_repo, self.hf_folder) if p)
        if len(self.files) == 1:
            return self.files[0].path
        return os.path.commonpath([f.path for f in self.files])


def _fashion_mnist_file(stem: str, size: int, md5: str) -> AssetFile:
    return AssetFile(
        f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{stem}.gz", f"fashion-mnist/{stem}.gz", size, md5
    )


REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "sd-vae-ft-ema",
            "SD-VAE (ft-EMA decoder) for SiT latents, a diffusers AutoencoderKL folder",
            hf_repo="stabilityai/sd-vae-ft-ema",
            hf_include=("config.json", "diffusion_pytorch_model.safetensors"),
        ),
        Asset(
            "va-vae",
            "VA-VAE f16d32 (LDM-format checkpoint) and its latent statistics, for LightningDiT",
            hf_repo="hustvl/vavae-imagenet256-f16d32-dinov2",
            hf_include=("vavae-imagenet256-f16d32-dinov2.pt", "latents_stats.pt"),
        ),
        Asset(
            "inception-fid",
            "torch-fidelity's InceptionV3 FID weights (TF 2015-12-05 graph)",
            files=(
                AssetFile(
                    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                    "weights-inception-2015-12-05-6726825d.pth",
                    "torch-fidelity/weights-inception-2015-12-05-6726825d.pth",
                    digest="sha256:6726825d",
                ),
            ),
        ),
        Asset(
            "adm-ref-imagenet256",
            "ADM evaluator reference batch for ImageNet 256x256",
            files=(
                AssetFile(
                    "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
                    "VIRTUAL_imagenet256_labeled.npz",
                    "adm/VIRTUAL_imagenet256_labeled.npz",
                ),
            ),
        ),
        Asset(
            "ig-sit-xl2",
            "released SiT-XL/2 + IG checkpoint (800 epochs)",
            hf_repo="CVLUESTC/Internal-Guidance",
            hf_folder="SiT",
        ),
        Asset(
            "ig-lightningdit-xl1",
            "released LightningDiT-XL/1 + IG checkpoint (680 epochs)",
            hf_repo="CVLUESTC/Internal-Guidance",
            hf_folder="Lightningdit",
        ),
        Asset(
            "sit-xl2-256",
            "upstream SiT-XL/2 256x256 checkpoint (willisma/SiT)",
            files=(
                AssetFile(
                    "https://www.dl.dropboxusercontent.com/scl/fi/as9oeomcbub47de5g4be0/SiT-XL-2-256.pt"
                    "?rlkey=uxzxmpicu46coq3msb17b9ofa&dl=0",
                    "sit/SiT-XL-2-256x256.pt",
                ),
            ),
        ),
        Asset(
            "fashion-mnist",
            "Fashion-MNIST IDX files (the embedded default; Debian ships them as dataset-fashion-mnist)",
            files=(
                _fashion_mnist_file("train-images-idx3-ubyte", 26421880, "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                _fashion_mnist_file("train-labels-idx1-ubyte", 29515, "md5:25c81989df183df01b3e8a0aad5dffbe"),
                _fashion_mnist_file("t10k-images-idx3-ubyte", 4422102, "md5:bef4ecab320f06d8554ea6380940ec79"),
                _fashion_mnist_file("t10k-labels-idx1-ubyte", 5148, "md5:bb300cfdad3c16e7a12a480ee83cd310"),
            ),
            cluster=False,
        ),
    ]
}


def default_assets_dir() -> str:
    """``$IG_ASSETS``, else ``assets`` (relative to the working directory, the workflow root)."""
    return os.environ.get("IG_ASSETS", "assets")


def get_asset(name: str) -> Asset:
    if name not in REGISTRY:
        raise IGError(f"unknown asset {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def asset_for_hub_id(hub_id: str) -> Asset | None:
    """The registered asset that holds the root of Hugging Face repo ``hub_id``, if any."""
    return next((a for a in REGISTRY.values() if a.hf_repo == hub_id and not a.hf_folder), None)


def require(name: str, assets_dir: str | os.PathLike) -> Path:
    """Path of asset ``name`` in ``assets_dir``; a one-line error naming the fix when absent."""
    asset = get_asset(name)
    root = Path(assets_dir)
    expected = [root / f.path for f in asset.files]
    if asset.hf_repo:
        folder = root / asset.path
        expected = [folder / f for f in asset.hf_include] or [folder]
    for path in expected:
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            raise IGError(
                f"missing asset {name!r}: {path} not found; run `ig fetch-assets --only {name} --assets-dir {root}`"
                " on a machine with internet access"
            )
    return root / asset.path


# --------------------------------------------------------------------------- downloading


def _open(url: str, offset: int = 0):
    headers = {"User-Agent": "ig-fetch-assets"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def hf_files(asset: Asset, endpoint: str = HF_ENDPOINT) -> tuple[AssetFile, ...]:
    """List an HF asset's files with the Hub API (size; sha256 for LFS files)."""
    folder = f"/{asset.hf_folder}" if asset.hf_folder else ""
    url = f"{endpoint}/api/models/{asset.hf_repo}/tree/main{folder}?recursive=true"
    with _open(url) as response:
        entries = json.load(response)
    prefix = f"{asset.hf_folder}/" if asset.hf_folder else ""
    files = []
    for entry in entries:
        relative = entry["path"].removeprefix(prefix)
        if entry.get("type") != "file" or (asset.hf_include and relative not in asset.hf_include):
            continue
        lfs = entry.get("lfs") or {}
        files.append(
            AssetFile(
                f"{endpoint}/{asset.hf_repo}/resolve/main/{entry['path']}",
                f"hf/{asset.hf_repo}/{entry['path']}",
                entry.get("size"),
                f"sha256:{lfs['oid']}" if lfs.get("oid") else None,
            )
        )
    missing = set(asset.hf_include) - {f.path.removeprefix(f"hf/{asset.hf_repo}/{prefix}") for f in files}
    if missing or not files:
        raise IGError(f"{url} lacks {', '.join(sorted(missing)) or 'any file'}; the repository may have changed")
    return tuple(files)


def check_file(path: Path, file: AssetFile, hash_it: bool = True) -> str | None:
    """Why ``path`` is not a good copy of ``file`` (None when it is)."""
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        return f"size {size} != expected {file.size}"
    if hash_it and file.digest:
        algorithm, expected = file.digest.split(":", 1)
        actual = file_digest(path, algorithm)
        if not actual.startswith(expected.lower()):
            return f"{algorithm} {actual[: len(expected)]} != expected {expected}"
    return None


def download(file: AssetFile, dest: Path, url: str | None = None, progress: bool = True) -> None:
    """Download ``file`` to ``dest`` via ``dest.part``; resume that when the server allows it."""
    url = url or file.url
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if file.size is not None and offset > file.size:
        offset = 0
    if file.size is None or offset < file.size:
        try:
            with _open(url, offset) as response:
                _receive(response, part, offset, file.size, progress)
        except urllib.error.HTTPError as exc:
            if exc.code != 416:  # 416: nothing after `offset`, i.e. the .part is already complete
                raise
    problem = check_file(part, file)
    if problem:
        part.unlink()
        raise IGError(f"{url}: downloaded file is bad ({problem}); deleted it, rerun to try again")
    os.replace(part, dest)


def _receive(response, part: Path, offset: int, size: int | None, progress: bool) -> None:
    """Append the body to ``part`` (or rewrite it when the server ignored the Range request)."""
    from tqdm import tqdm

    if offset and getattr(response, "status", None) != 206:
        offset = 0
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else size
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=part.name, disable=not progress)
    with open(part, "ab" if offset else "wb") as out, bar:
        while block := response.read(CHUNK):
            out.write(block)
            bar.update(len(block))


def fetch(
    asset: Asset,
    assets_dir: str | os.PathLike,
    *,
    mirror: str | None = None,
    hf_endpoint: str = HF_ENDPOINT,
    verify: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Make every file of ``asset`` complete in ``assets_dir``; returns the files downloaded now.

    ``mirror`` serves direct files at ``<mirror>/<relative path>``; ``verify`` re-hashes files
    already present (otherwise their size is trusted).
    """
    root = Path(assets_dir)
    files = hf_files(asset, hf_endpoint) if asset.hf_repo else asset.files
    fetched = []
    for file in files:
        dest = root / file.path
        if dest.is_file():
            problem = check_file(dest, file, hash_it=verify)
            if problem is None:
                log.info("%s: complete", dest)
                continue
            log.warning("%s: %s; fetching it again", dest, problem)
            dest.unlink()
        url = f"{mirror.rstrip('/')}/{file.path}" if mirror and not asset.hf_repo else file.url
        log.info("%s <- %s", dest, url)
        download(file, dest, url, progress)
        fetched.append(dest)
    return fetched


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--assets-dir", default=default_assets_dir(), help="destination (default: $IG_ASSETS or assets)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="fetch only these assets (default: all cluster assets)")
    p.add_argument("--list", action="store_true", help="list the registry and what is present, then exit")
    p.add_argument("--mirror", help="fetch direct (non-Hugging Face) files from MIRROR/<relative path> instead")
    p.add_argument("--hf-endpoint", default=os.environ.get("HF_ENDPOINT", HF_ENDPOINT), help="Hugging Face endpoint")
    p.add_argument("--verify", action="store_true", help="re-hash files already present")


def _status(asset: Asset, assets_dir: str) -> str:
    try:
        require(asset.name, assets_dir)
        return "present"
    except IGError:
        return "missing"


def run(args: argparse.Namespace) -> None:
    if args.list:
        for asset in REGISTRY.values():
            default = "" if asset.cluster else " (only with --only)"
            print(f"{asset.name:22s} {_status(asset, args.assets_dir):8s} {asset.path}  {asset.description}{default}")
        return
    assets = [get_asset(n) for n in args.only] if args.only else [a for a in REGISTRY.values() if a.cluster]
    failures = []
    for asset in assets:
        try:
            fetch(asset, args.assets_dir, mirror=args.mirror, hf_endpoint=args.hf_endpoint, verify=args.verify)
        except (OSError, IGError, ValueError) as exc:  # URLError is an OSError
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            failures.append(f"{asset.name} ({reason})")
            log.error("%s: %s", asset.name, reason)
    if failures:
        raise IGError(f"{len(failures)} asset(s) failed: {'; '.join(failures)}; check the network and rerun")
    log.info("all %d asset(s) complete in %s", len(assets), args.assets_dir)
