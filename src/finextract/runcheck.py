"""A read-only check of a run directory's files before any backend parses them.

Backends hand their files to transformers, tokenizers, safetensors and PyYAML, whose errors
for a damaged file are tracebacks that rarely name the file ("expected value at line 1
column 1", "HeaderTooLarge", "unacceptable character #x0000"). This walks the chosen
checkpoint once and refuses, with one line naming the file, anything that cannot be what it
claims to be:

* ``config.yaml``: readable UTF-8 YAML mapping with a ``backend`` (size/alias limits of
  :func:`finextract.tasks.read_yaml_file`, so a NUL byte or an alias bomb is refused too);
* every ``*.json``: strict UTF-8 JSON (``labels.json``, ``config.json``, ``tokenizer.json``, ...);
* every ``*.safetensors``: a well-formed header whose tensors exactly cover the file (a
  truncated or garbage file fails here; bytes flipped *inside* the tensor data keep the
  shape and are caught by the checkpoint checksums instead);
* any file that cannot be read at all.

It never unpickles and never imports a backend. Whatever still fails while the backend
loads is reported as one line naming the checkpoint (``FINEXTRACT_DEBUG=1`` keeps the
traceback).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from finextract.errors import FinextractError, RunDirError

MAX_SAFETENSORS_HEADER = 100 << 20  # the format's own cap (safetensors refuses larger headers)
MAX_JSON_FILE = 512 << 20


def check_safetensors(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise RunDirError(f"{path}: not a safetensors file ({size} bytes, truncated?)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_SAFETENSORS_HEADER or n > size - 8:
            raise RunDirError(f"{path}: not a safetensors file (header length {n} does not fit a {size}-byte file)")
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RunDirError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise RunDirError(f"{path}: not a safetensors file (its header is not an object)")
    data = size - 8 - n
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise RunDirError(f"{path}: tensor {name!r} has no valid data_offsets")
        end = max(end, offsets[1])
    if end != data:
        state = "truncated" if end > data else "has trailing bytes"
        raise RunDirError(f"{path}: {state}: its tensors need {end} bytes of data, the file holds {data}")


def check_json_file(path: Path) -> Any:
    from finextract.strictjson import loads_strict

    if path.stat().st_size > MAX_JSON_FILE:
        raise RunDirError(f"{path}: {path.stat().st_size} bytes, too large for a JSON file of a run")
    try:
        return loads_strict(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise RunDirError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except ValueError as exc:
        raise RunDirError(f"{path}: not valid JSON: {exc}") from None


def check_config(root: Path) -> dict[str, Any]:
    from finextract.tasks import read_yaml_file

    path = root / "config.yaml"
    if not path.is_file():
        raise RunDirError(f"{root}: not a finextract run directory (no config.yaml)")
    try:
        data = read_yaml_file(path)
    except ValueError as exc:
        raise RunDirError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("backend"), str):
        raise RunDirError(f"{path}: a run config must be a YAML mapping with a 'backend'")
    return data


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "tokenizer.model",
                   "sentencepiece.bpe.model")


def check_companions(folder: Path) -> None:
    """Files a Hugging Face folder cannot do without, checked by what else it holds.

    transformers falls back silently when some are missing (a folder without ``tokenizer.json``
    loaded *some* tokenizer and answered), so their absence is refused here by name.
    """
    names = {p.name for p in folder.iterdir() if p.is_file()}
    if "tokenizer_config.json" in names and not names & set(TOKENIZER_FILES):
        raise RunDirError(f"{folder / 'tokenizer.json'}: missing (the folder has tokenizer_config.json "
                          "but no tokenizer file)")
    if "adapter_config.json" in names and "adapter_model.safetensors" not in names:
        raise RunDirError(f"{folder / 'adapter_model.safetensors'}: missing")
    weights = any(n.endswith(".safetensors") for n in names) or "model.safetensors.index.json" in names
    if "model.safetensors" in names and "config.json" not in names:
        raise RunDirError(f"{folder / 'config.json'}: missing (the folder has model.safetensors)")
    if "config.json" in names and not weights and "adapter_config.json" not in names:
        config = check_json_file(folder / "config.json")
        if isinstance(config, dict) and "model_type" in config:
            raise RunDirError(f"{folder / 'model.safetensors'}: missing (the folder has a model config.json)")


def check_files(folder: Path) -> None:
    """Check every JSON and safetensors file under ``folder``; refuse unreadable ones."""
    for sub in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        try:
            check_companions(sub)
        except OSError as exc:
            raise RunDirError(f"{sub}: cannot read: {exc.strerror or exc}") from None
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors":
                check_safetensors(path)
            elif path.suffix == ".json":
                check_json_file(path)
            else:
                with path.open("rb") as fh:
                    fh.read(1)
        except OSError as exc:
            raise RunDirError(f"{path}: cannot read: {exc.strerror or exc}") from None


def check_run(root: str | Path, checkpoint: str | None = None) -> Path | None:
    """Check ``root``'s config and the files of the checkpoint that would be loaded; its path."""
    from finextract.rundir import RunDir

    root = Path(root)
    if not root.is_dir():
        raise RunDirError(f"{root}: no such run directory")
    check_config(root)
    run = RunDir(root)
    if run.best_path.exists() and checkpoint in (None, "best"):
        check_json_file(run.best_path)
    try:
        ckpt = run.resolve_checkpoint(checkpoint)
    except FinextractError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{root}: cannot choose checkpoint {checkpoint or 'best'!r}: {exc}") from None
    if not ckpt.is_dir():
        raise RunDirError(f"{ckpt}: no such checkpoint")
    check_files(ckpt)
    return ckpt
