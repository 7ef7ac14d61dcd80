"""Rebuild fp32 model folders on the GPU machine from the parts staged in /tmp/stage.

Why: a device call carries at most 64 MiB, so MiniLM travels as fp16 and all-mpnet-base-v2
as bf16 safetensors cut into ~44 MiB pieces over several calls; training wants fp32 weights.
"""

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

stage = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/stage")
mini = stage / "minilm" / "model.safetensors"   # absent when a call stages mpnet only
if mini.exists():
    sd = load_file(str(mini))
    if any(v.dtype == torch.float16 for v in sd.values()):
        save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}, str(mini))
parts = sorted(stage.glob("mp[0-9]/mpnet.bf16.part*"))
if parts:
    out = stage / "mpnet"
    out.mkdir(exist_ok=True)
    joined = stage / "mpnet.bf16.safetensors"
    with open(joined, "wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    sd = load_file(str(joined))
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}, str(out / "model.safetensors"))
    for p in stage.glob("mp[0-9]/*"):
        if p.is_file() and "part" not in p.name:
            shutil.copy(p, out / p.name)
    print("mpnet", len(sd), "tensors,", sum(v.numel() for v in sd.values()), "values")
if mini.exists():
    print("minilm", len(load_file(str(mini))), "tensors")
