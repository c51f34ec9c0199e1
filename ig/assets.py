"""``ig fetch-assets``: the registry of downloadable files, and ``require`` for every loader.

Cluster jobs run offline (``HF_HUB_OFFLINE=1``). Everything they need that is not made by the
pipeline itself (autoencoder weights, the FID Inception, ADM's reference batch, released
checkpoints) is downloaded beforehand, once, into one assets folder by this command. Loaders
find their files with :func:`require`, which fails with one line naming the file and the
command that fetches it.

Every file is pinned: Hugging Face files at a commit of their repository (never ``main``), every
file by its sha256 (and size where known), so that a cluster run reads exactly the bytes this
registry names. A download goes to ``<file>.part`` and is renamed into place only after its size
and hash check out; a rerun skips complete files and resumes a ``.part`` (HTTP Range) or starts it
over when the server cannot resume. ``--verify`` re-hashes an existing assets folder.

Values that could not be established when the registry was written are ``None``: such an asset is
refused until it is pinned, or fetched once with ``--allow-unpinned`` on a trusted network, which
prints the revision and hashes to pin (``ig fetch-assets --list`` shows what is missing).

Rehearsal stand-ins (``ig rehearsal-assets``, ``ig.rehearsal``) have the real layout and random
weights; a ``REHEARSAL`` file in the asset's folder marks them. Every loader refuses a marked asset
unless ``IG_REHEARSAL=1``, which the workflow sets for a campaign with ``rehearsal: true`` only, so
stand-ins are never mistaken for, or mixed with, pinned weights; ``fetch`` leaves them in place in
a rehearsal and refuses to fetch over them otherwise, and ``--verify`` reports them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from ig.errors import IGError
from ig.utils.io import file_digest

log = logging.getLogger(__name__)

HF_ENDPOINT = "https://huggingface.co"
ASSETS_ENV = "IG_ASSETS"  # the assets folder when none is given (the workflow sets it to the campaign's)
REHEARSAL_MARKER = "REHEARSAL"  # in an asset's folder: random-weight stand-in (ig.rehearsal)
REHEARSAL_ENV = "IG_REHEARSAL"  # "1": this process belongs to a rehearsal, which may load stand-ins
CHUNK = 1 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class AssetFile:
    """One downloadable file. ``sha256`` None: not pinned yet (see the module docstring)."""

    path: str  # in the assets folder; for a Hugging Face asset, in its repository
    sha256: str | None
    size: int | None = None
    url: str | None = None  # direct files only: Hugging Face files resolve at the asset's revision


@dataclass(frozen=True)
class Asset:
    """A named thing a run needs: direct ``files``, or files of a Hugging Face repository."""

    name: str
    description: str
    files: tuple[AssetFile, ...] = ()  # empty for a Hugging Face folder whose file names are not pinned yet
    hf_repo: str | None = None
    hf_revision: str | None = None  # a commit of hf_repo
    hf_folder: str = ""  # the folder of hf_repo that require() returns ("" = its root)
    cluster: bool = True  # fetched by a plain `ig fetch-assets`

    @property
    def path(self) -> str:
        """What :func:`require` returns, relative to the assets folder (a file or a folder)."""
        if self.hf_repo:
            return "/".join(p for p in ("hf", self.hf_repo, self.hf_folder) if p)
        if len(self.files) == 1:
            return self.files[0].path
        return os.path.commonpath([f.path for f in self.files])

    def local(self, file: AssetFile) -> str:
        """Where ``file`` goes, relative to the assets folder."""
        return f"hf/{self.hf_repo}/{file.path}" if self.hf_repo else file.path

    def missing_pins(self) -> list[str]:
        """What the registry still lacks to pin this asset (empty when it is pinned)."""
        missing = []
        if self.hf_repo and not self.hf_revision:
            missing.append("revision")
        if not self.files:
            missing.append("file names")
        missing += [f"sha256 of {f.path}" for f in self.files if not f.sha256]
        return missing


def _hf(path: str, sha256: str | None = None, size: int | None = None) -> AssetFile:
    return AssetFile(path, sha256, size)


def _fashion_mnist_file(stem: str, size: int, sha256: str) -> AssetFile:
    url = f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{stem}.gz"
    return AssetFile(f"fashion-mnist/{stem}.gz", sha256, size, url)


# Sources of the pinned values: the Inception hash and size are torch-fidelity's release file as
# listed by several FID tools; the Fashion-MNIST hashes by two independent download scripts; the
# SD-VAE commit and safetensors size by several projects that pin it; the others as noted next to
# each value (HF pages are huggingface.co/...). The IG checkpoints are not pinned: no public source
# reachable when this was written lists the files of CVLUESTC/Internal-Guidance.
REGISTRY: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "sd-vae-ft-ema",
            "SD-VAE (ft-EMA decoder) for SiT latents, a diffusers AutoencoderKL folder",
            files=(
                # pinned at this revision by hu-jy-0406/SiT-Complementary workflow/prepare_assets.py and others
                _hf("config.json", "92d3dfb746fca211a2c9e019e285f8597412211728dce3c5bcf4eda0f2d62e7e", 547),
                # LFS SHA256 on stabilityai/sd-vae-ft-ema/blob/main/diffusion_pytorch_model.safetensors
                _hf(
                    "diffusion_pytorch_model.safetensors",
                    "32db726da04f06c1b6b14c0043ce115cc87a501482945c5add89a40d838fcb46",
                    334_643_276,
                ),
            ),
            hf_repo="stabilityai/sd-vae-ft-ema",
            hf_revision="f04b2c4b98319346dad8c65879f680b1997b204a",
        ),
        Asset(
            "va-vae",
            "VA-VAE f16d32 (LDM-format checkpoint) and its latent statistics, for LightningDiT",
            files=(
                # LFS SHA256 on hustvl/vavae-imagenet256-f16d32-dinov2/blob/refs%2Fpr%2F1/<file>, from 8751307
                _hf(
                    "vavae-imagenet256-f16d32-dinov2.pt",
                    "2088e07378d26047e7bfcbae669feb5d4eab37276f23621db3eebdacc7d82b6b",
                ),
                # LFS pointer in hustvl/vavae-imagenet256-f16d32-dinov2/commit/<hf_revision>
                _hf("latents_stats.pt", "fb96ba21f7f423ae9b0d1e732b0eac16d386f0653bf21608df682138c2fa5ee7", 1788),
            ),
            hf_repo="hustvl/vavae-imagenet256-f16d32-dinov2",
            hf_revision="15cf70a3ed5e893123de422a817391eafde83ec9",  # "Upload latents_stats.pt", child of 8751307
        ),
        Asset(
            "inception-fid",
            "torch-fidelity's InceptionV3 FID weights (TF 2015-12-05 graph)",
            files=(
                AssetFile(
                    "torch-fidelity/weights-inception-2015-12-05-6726825d.pth",
                    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
                    95_628_359,
                    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                    "weights-inception-2015-12-05-6726825d.pth",
                ),
            ),
        ),
        Asset(
            "adm-ref-imagenet256",
            "ADM evaluator reference batch for ImageNet 256x256",
            files=(
                AssetFile(
                    "adm/VIRTUAL_imagenet256_labeled.npz",
                    # LFS pointer in ruizegao/efficient-dit; same in hu-jy-0406/SiT-Complementary prepare_assets.py
                    "b32732719497e42660a9affb4a966068cba0855ac449b82015e34ec376d20758",
                    2_037_122_530,
                    url="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
                    "VIRTUAL_imagenet256_labeled.npz",
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
                    "sit/SiT-XL-2-256x256.pt",
                    # LFS oid of the authors' HF copy (nyu-visionx/SiT-collections) and iasudakov/model_checkpoints
                    "e645b5cd82d1d645cfd9b7c96041b56b2a0aa61faed90c0869e79be02ab55aca",
                    2_700_608_707,
                    url="https://www.dl.dropboxusercontent.com/scl/fi/as9oeomcbub47de5g4be0/SiT-XL-2-256.pt"
                    "?rlkey=uxzxmpicu46coq3msb17b9ofa&dl=0",
                ),
            ),
        ),
        Asset(
            "fashion-mnist",
            "Fashion-MNIST IDX files (the embedded default; Debian ships them as dataset-fashion-mnist)",
            files=(
                _fashion_mnist_file(
                    "train-images-idx3-ubyte",
                    26421880,
                    "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
                ),
                _fashion_mnist_file(
                    "train-labels-idx1-ubyte", 29515, "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"
                ),
                _fashion_mnist_file(
                    "t10k-images-idx3-ubyte",
                    4422102,
                    "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
                ),
                _fashion_mnist_file(
                    "t10k-labels-idx1-ubyte", 5148, "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"
                ),
            ),
            cluster=False,
        ),
    ]
}


def default_assets_dir() -> str:
    """``$IG_ASSETS``, else ``assets`` (relative to the working directory, the workflow root)."""
    return os.environ.get(ASSETS_ENV, "assets")


def get_asset(name: str) -> Asset:
    if name not in REGISTRY:
        raise IGError(f"unknown asset {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def asset_for_hub_id(hub_id: str) -> Asset | None:
    """The registered asset that holds the root of Hugging Face repo ``hub_id``, if any."""
    return next((a for a in REGISTRY.values() if a.hf_repo == hub_id and not a.hf_folder), None)


def require(name: str, assets_dir: str | os.PathLike) -> Path:
    """Path of asset ``name`` in ``assets_dir``; a one-line error naming the fix when absent (or a
    rehearsal stand-in outside a rehearsal)."""
    asset = get_asset(name)
    root = Path(assets_dir)
    expected = [root / asset.local(f) for f in asset.files] or [root / asset.path]
    for path in expected:
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            raise IGError(
                f"missing asset {name!r}: {path} not found; run `ig fetch-assets --only {name} --assets-dir {root}`"
                " on a machine with internet access"
            )
    refuse_stand_in(root / asset.path)
    return root / asset.path


def stand_in_marker(path: str | os.PathLike) -> Path | None:
    """The ``REHEARSAL`` marker of an asset file (in its folder) or asset folder, if it is a stand-in."""
    path = Path(path)
    marker = (path if path.is_dir() else path.parent) / REHEARSAL_MARKER
    return marker if marker.is_file() else None


def is_rehearsal() -> bool:
    return os.environ.get(REHEARSAL_ENV) == "1"


def refuse_stand_in(path: str | os.PathLike) -> None:
    """A one-line error when ``path`` is a rehearsal stand-in and this is no rehearsal."""
    marker = stand_in_marker(path)
    if marker is not None and not is_rehearsal():
        raise IGError(
            f"{path} is a rehearsal stand-in with random weights ({marker}); only a rehearsal campaign (rehearsal: "
            "true, config/rehearsal.yaml) may load it: point assets_dir at the pinned assets of `ig fetch-assets`"
        )


# --------------------------------------------------------------------------- downloading


def _open(url: str, offset: int = 0):
    headers = {"User-Agent": "ig-fetch-assets"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)


def _get_json(url: str):
    with _open(url) as response:
        return json.load(response)


def unpinned_hf(asset: Asset, endpoint: str = HF_ENDPOINT) -> Asset:
    """``asset`` completed from the Hub for a first, unpinned fetch: the commit ``main`` points at
    now, and (for a folder without pinned file names) the folder's files with the Hub's sizes and
    LFS sha256, which then check the download but pin nothing."""
    revision = asset.hf_revision or _get_json(f"{endpoint}/api/models/{asset.hf_repo}/revision/main")["sha"]
    if asset.files:
        return replace(asset, hf_revision=revision)
    folder = f"/{asset.hf_folder}" if asset.hf_folder else ""
    url = f"{endpoint}/api/models/{asset.hf_repo}/tree/{revision}{folder}?recursive=true"
    files = tuple(
        AssetFile(entry["path"], (entry.get("lfs") or {}).get("oid"), entry.get("size"))
        for entry in _get_json(url)
        if entry.get("type") == "file"
    )
    if not files:
        raise IGError(f"{url} lists no files; the repository may have changed")
    return replace(asset, hf_revision=revision, files=files)


def source_url(asset: Asset, file: AssetFile, hf_endpoint: str = HF_ENDPOINT, mirror: str | None = None) -> str:
    """Where ``file`` is downloaded from: ``mirror``/<its place in the assets folder>, else its origin."""
    if mirror:
        return f"{mirror.rstrip('/')}/{asset.local(file)}"
    if asset.hf_repo:
        return f"{hf_endpoint}/{asset.hf_repo}/resolve/{asset.hf_revision}/{file.path}"
    return file.url


def check_file(path: Path, file: AssetFile, hash_it: bool = True) -> str | None:
    """Why ``path`` is not a good copy of ``file`` (None when it is)."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if file.size is not None and size != file.size:
        return f"size {size} != expected {file.size}"
    if hash_it and file.sha256:
        actual = file_digest(path, "sha256")
        if actual != file.sha256:
            return f"sha256 {actual} != expected {file.sha256}"
    return None


def download(file: AssetFile, dest: Path, url: str, progress: bool = True) -> None:
    """Download ``file`` to ``dest`` via ``dest.part``; resume that when the server allows it."""
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
    allow_unpinned: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Make every file of ``asset`` complete in ``assets_dir``; returns the files downloaded now.

    Files already present are checked by size, downloads by size and sha256. An asset that is not
    pinned is refused, unless ``allow_unpinned``: then it is fetched as the source has it now, and
    the values to pin are logged. In a rehearsal the stand-ins are the assets (nothing is fetched);
    outside one, a stand-in is never fetched over.
    """
    root = Path(assets_dir)
    if is_rehearsal():
        if stand_in_marker(root / asset.path) is None:
            raise IGError(f"rehearsal: no stand-in of {asset.name!r} in {root}; run `ig rehearsal-assets --out {root}`")
        log.info("%s: rehearsal stand-in (random weights), nothing to fetch", asset.name)
        return []
    if stand_in_marker(root / asset.path) is not None:
        raise IGError(
            f"{root / asset.path} holds a rehearsal stand-in of {asset.name!r}; fetch the real assets into another "
            "folder (--assets-dir), never over stand-ins"
        )
    missing = asset.missing_pins()
    if missing and not allow_unpinned:
        raise IGError(
            f"asset {asset.name!r} is not pinned in ig/assets.py (no {', '.join(missing)}); pin it, or fetch it "
            "once with --allow-unpinned on a trusted network and pin the values it prints"
        )
    if missing and asset.hf_repo:
        asset = unpinned_hf(asset, hf_endpoint)
        log.warning("%s: unpinned; pin hf_revision=%r", asset.name, asset.hf_revision)
    fetched = []
    for file in asset.files:
        dest = root / asset.local(file)
        problem = check_file(dest, file, hash_it=False)
        if problem is None:
            log.info("%s: complete", dest)
        else:
            if dest.exists():
                log.warning("%s: %s; fetching it again", dest, problem)
                dest.unlink()
            url = source_url(asset, file, hf_endpoint, mirror)
            log.info("%s <- %s", dest, url)
            download(file, dest, url, progress)
            fetched.append(dest)
        if missing:
            log.warning(
                "%s: unpinned; pin %s sha256=%s size=%d", asset.name, file.path, file_digest(dest), dest.stat().st_size
            )
    return fetched


def verify(asset: Asset, assets_dir: str | os.PathLike) -> list[str]:
    """What is wrong with ``asset`` in ``assets_dir`` (every file re-hashed); empty when it is good."""
    root = Path(assets_dir)
    if stand_in_marker(root / asset.path) is not None:
        return [f"{asset.path} (a rehearsal stand-in with random weights, not the pinned files)"]
    missing = asset.missing_pins()
    if missing:
        return [f"{asset.name} (not pinned: no {', '.join(missing)})"]
    problems = ((asset.local(f), check_file(root / asset.local(f), f)) for f in asset.files)
    return [f"{path} ({problem})" for path, problem in problems if problem]


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--assets-dir", default=default_assets_dir(), help="destination (default: $IG_ASSETS or assets)")
    p.add_argument("--only", nargs="+", metavar="NAME", help="fetch only these assets (default: all cluster assets)")
    p.add_argument("--list", action="store_true", help="list the registry, what is present and what is unpinned")
    p.add_argument("--verify", action="store_true", help="download nothing: re-hash the files present (exit 2 if bad)")
    p.add_argument("--mirror", help="fetch from MIRROR/<path in the assets folder> instead of the origins")
    p.add_argument("--hf-endpoint", default=os.environ.get("HF_ENDPOINT", HF_ENDPOINT), help="Hugging Face endpoint")
    p.add_argument(
        "--allow-unpinned", action="store_true", help="fetch assets the registry has not pinned yet, printing the pins"
    )


def _status(asset: Asset, assets_dir: str) -> str:
    if stand_in_marker(Path(assets_dir) / asset.path) is not None:
        return "stand-in"
    try:
        require(asset.name, assets_dir)
        return "present"
    except IGError:
        return "missing"


def run(args: argparse.Namespace) -> None:
    if args.list:
        for asset in REGISTRY.values():
            default = "" if asset.cluster else " (only with --only)"
            missing = asset.missing_pins()
            pinned = f" UNPINNED: no {', '.join(missing)}" if missing else ""
            status = _status(asset, args.assets_dir)
            print(f"{asset.name:22s} {status:8s} {asset.path}  {asset.description}{default}{pinned}")
        return
    assets = [get_asset(n) for n in args.only] if args.only else [a for a in REGISTRY.values() if a.cluster]
    if args.verify:
        problems = [problem for asset in assets for problem in verify(asset, args.assets_dir)]
        if problems:
            raise IGError(f"{len(problems)} problem(s) in {args.assets_dir}: {'; '.join(problems)}")
        log.info("all %d asset(s) verified in %s", len(assets), args.assets_dir)
        return
    failures = []
    for asset in assets:
        try:
            fetch(
                asset,
                args.assets_dir,
                mirror=args.mirror,
                hf_endpoint=args.hf_endpoint,
                allow_unpinned=args.allow_unpinned,
            )
        except (OSError, IGError, ValueError) as exc:  # URLError is an OSError
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            failures.append(f"{asset.name} ({reason})")
            log.error("%s: %s", asset.name, reason)
    if failures:
        raise IGError(f"{len(failures)} asset(s) failed: {'; '.join(failures)}")
    log.info("all %d asset(s) complete in %s", len(assets), args.assets_dir)
