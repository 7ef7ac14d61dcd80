"""Turn a checkpoint that came back from the GPU machine into a run folder every command loads.

Why: a device call returns at most 16 MiB per file, so ``encoder_accuracy_issue11.py --export``
sends the best checkpoint as fp16 weights in a tar cut into 15 MiB parts. This joins the parts,
restores fp32 weights (what was trained; fp16 -> fp32 is exact for values that came from fp16),
re-writes the checkpoint manifest (the weights file changed) and writes ``best.json``::

    python benchmarks/device_unpack.py /work/.device/8/s_card.tar.00 runs/s_card step-1200 [pointer]

(the third argument: the checkpoint's name in the GPU run, from its summary's ``best``; the optional
fourth sets ``model.decoder`` in the unpacked config: jobs before session 6 left it at the
dataclass default ``bio`` while the shipped merchant configs decode with ``pointer``).
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path


def unpack(first_part: Path, dest: Path, checkpoint: str, decoder: str | None = None) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    from finextract.rundir import write_manifest

    stem = first_part.name.rsplit(".", 1)[0]
    parts = sorted(first_part.parent.glob(stem + ".[0-9][0-9]"))
    data = b"".join(p.read_bytes() for p in parts)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        t.extractall(dest / "_unpacked", filter="data")
    src = dest / "_unpacked"
    config = (src / "config.yaml").read_text()
    if decoder:
        import re

        config, n = re.subn(r"(?m)^(  decoder: )\S+$", rf"\g<1>{decoder}", config)
        if n != 1:
            raise SystemExit(f"{src / 'config.yaml'}: no single model.decoder line to set")
    (dest / "config.yaml").write_text(config)
    ckpt = dest / "checkpoints" / checkpoint
    ckpt.parent.mkdir(exist_ok=True)
    if ckpt.exists():
        raise SystemExit(f"{ckpt} exists already")
    (src / "best").rename(ckpt)
    for name in ("MANIFEST.json", "COMPLETE"):
        (ckpt / name).unlink(missing_ok=True)
    st = ckpt / "model" / "model.safetensors"
    save_file({k: v.float().contiguous() if v.dtype == torch.float16 else v for k, v in load_file(str(st)).items()},
              str(st))
    write_manifest(ckpt)
    (ckpt / "COMPLETE").write_text("")
    (dest / "best.json").write_text(json.dumps({"checkpoint": ckpt.name, "metric": "micro_f1", "value": None}))
    src.rmdir() if not any(src.iterdir()) else None
    return dest


if __name__ == "__main__":
    print(unpack(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], *sys.argv[4:5]))
