"""Task and run-config YAML: an alias bomb fails fast with a clear message; normal anchors still work."""

from __future__ import annotations

import time

import pytest

from finextract.config import read_config_dict
from finextract.errors import UserError
from finextract.tasks import load_task, read_yaml_file

# 342 bytes, 9 levels of 9 aliases: 9^9 (387 million) strings once expanded
LOLS = ",".join(['"lol"'] * 9)
BOMB = "\n".join([f"a: &a [{LOLS}]"] + [f"{c}: &{c} [{','.join(['*' + p] * 9)}]"
                                         for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"


def test_billion_laughs_task_fails_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    assert len(BOMB.encode()) < 400
    t0 = time.perf_counter()
    with pytest.raises(UserError, match=r"bomb.yaml: .*(aliases|nodes)"):
        load_task(str(path))
    with pytest.raises(UserError, match=r"bomb.yaml"):
        read_config_dict(path)
    assert time.perf_counter() - t0 < 2


def test_many_aliases_and_self_reference_refused(tmp_path):
    many = tmp_path / "many.yaml"
    many.write_text("x: &x 1\nl: [" + ", ".join(["*x"] * 150) + "]\n", encoding="utf-8")
    with pytest.raises(UserError, match="more than 100 aliases"):
        read_yaml_file(many)
    nested = tmp_path / "deep.yaml"
    nested.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="deep.yaml"):
        read_yaml_file(nested)


def test_ordinary_anchors_nul_and_size(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("base: &b {lr: 0.1}\ntrain: *b\nmore: {<<: *b, epochs: 2}\n", encoding="utf-8")
    assert read_yaml_file(ok) == {"base": {"lr": 0.1}, "train": {"lr": 0.1}, "more": {"lr": 0.1, "epochs": 2}}
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"backend: crf\x00\n")
    with pytest.raises(UserError, match="nul.yaml: not valid YAML"):
        read_yaml_file(nul)
    big = tmp_path / "big.yaml"
    big.write_text("rules: '" + "x" * (1 << 20) + "'\n", encoding="utf-8")
    with pytest.raises(UserError, match="limit"):
        read_yaml_file(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UserError, match=r"latin.yaml: not valid UTF-8"):
        read_yaml_file(latin)
