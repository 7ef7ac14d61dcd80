"""On the GPU machine: copy the students worth bringing back into $OUT, within the return limits.

A device call returns at most 8 files and 64 MiB, and a 3-layer student is ~32 MB in fp16, so two
fit. Candidates, fastest first: those whose pilot micro-F1 is within ``--slack`` points of the
3-layer control's (the job named first); the control itself fills the last place if fewer pass::

    python benchmarks/device_pick_students.py RESULT.json EXPORT_DIR OUT_DIR k7_3 k7_2 k7_3f512 k7_3f768
"""

import json
import shutil
import sys
from pathlib import Path

result, export, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), Path(sys.argv[3])
control, fastest_first = sys.argv[4], sys.argv[5:]
slack = 0.01
budget, files = 60 * 2**20, 6  # leave room for the JSON results beside the students


def pilot(name: str) -> float | None:
    try:
        return result[name]["scores"]["pilot"]["pointer@1"]["micro_f1"]
    except (KeyError, TypeError):
        return None


base = pilot(control)
picked = [n for n in fastest_first if base is not None and pilot(n) is not None and pilot(n) >= base - slack][:2]
if len(picked) < 2 and base is not None:
    picked.append(control)
for name in picked:
    parts = sorted(export.glob(f"{name}.tar.*"))
    size = sum(p.stat().st_size for p in parts)
    if not parts or size > budget or len(parts) > files:
        print(f"{name}: not returned ({len(parts)} parts, {size / 2**20:.1f} MiB left to fit {budget / 2**20:.1f})")
        continue
    for p in parts:
        shutil.copy(p, out / p.name)
    budget, files = budget - size, files - len(parts)
    print(f"{name}: returned (pilot {pilot(name)}, control {base})")
