"""Every bad input, through every command that reads it: a clean error, never a traceback.

The matrix is (command) x (kind of broken input): every file of ``tests/data/broken/`` plus the
cases of issue 14 section 8 built here (BOM, NUL, a 5,000-digit number, deep nesting, a Parquet
int column, a huge CSV field, invalid UTF-8 in .txt/.csv, empty inputs). A command must either
accept the input (a label problem is no problem for ``predict``, which reads only texts) or
exit non-zero with an ``error:`` naming the file and line/row, without a traceback and without
leaving any output behind. Commands run in-process through ``finextract.cli.main`` (the real
error handling, fast); a few rows also run in a real subprocess. Tiny models: the ``toy``
backend, a CRF trained for a few iterations, an untrained 1-layer encoder for damaged files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import test_serve_toy  # noqa: F401  (registers the toy backend)
from test_serve_toy import make_toy_run, toy_cli_command

from finextract import cli as fx_cli

DATA = Path(__file__).parent / "data"
BROKEN = sorted((DATA / "broken").glob("*.jsonl"))
SAMPLE_LINE = (DATA / "merchant_sample.jsonl").read_text(encoding="utf-8").splitlines()[0]
# kinds that break a *text* input (predict/batch read only the text); the others are label problems
TEXT_BREAKING = {"not-json", "not-object", "missing-text", "text-not-string", "not-utf8", "empty-file",
                 "empty-text", "text-too-long", "invalid-unicode", "duplicate-key", "nul-char",
                 "huge-number", "deep-nesting"}
ACCEPTED = {"duplicate-text", "bom"}  # a warning / an accepted encoding: every command goes on


def _extra_kinds(root: Path) -> dict[str, Path]:
    """Section-8 cases that are JSONL files too, written next to the shipped broken files."""
    root.mkdir(parents=True, exist_ok=True)
    obj = json.loads(SAMPLE_LINE)
    rows = {
        "bom": b"\xef\xbb\xbf" + SAMPLE_LINE.encode() + b"\n",
        "nul-char": SAMPLE_LINE.encode() + b"\n" + json.dumps({**obj, "text": "SQ *A\u0000B CA"}).encode() + b"\n",
        "huge-number": SAMPLE_LINE.encode() + b'\n{"text": ' + b"7" * 5000 + b', "fields": {}}\n',
        "deep-nesting": SAMPLE_LINE.encode() + b"\n" + b"[" * 50_000 + b"]" * 50_000 + b"\n",
    }
    out = {}
    for name, data in rows.items():
        path = root / f"{name}.jsonl"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    found = {p.stem: p for p in BROKEN}
    found.update(_extra_kinds(tmp_path_factory.mktemp("kinds")))
    return found


KIND_NAMES = sorted({p.stem for p in BROKEN} | {"bom", "nul-char", "huge-number", "deep-nesting"})


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return make_toy_run(tmp_path_factory.mktemp("matrix") / "toy")


_discovered = False


def run_cli(*args: str) -> tuple[int, str, str]:
    """``finextract ARGS`` in-process: (exit status, stdout, stderr); an escaping exception fails the test."""
    global _discovered
    if not _discovered:
        fx_cli._discover()
        _discovered = True
    out, err = io.StringIO(), io.StringIO()
    code = 0
    real = fx_cli._discover
    fx_cli._discover = lambda: None  # commands registered once per process
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            fx_cli.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        fx_cli._discover = real
    return code, out.getvalue(), err.getvalue()


def assert_clean_error(code: int, err: str, path: Path, expect_location: bool = True) -> None:
    assert code != 0, err
    assert "Traceback" not in err, err
    assert err.startswith("error:"), err
    if expect_location:
        assert path.name in err, err
        first_lines = err.splitlines()[:3]
        assert any(f"{path.name}:" in line for line in first_lines), err  # file:line or file: row/field


def _accepts(command: str, kind: str) -> bool:
    if kind in ACCEPTED:
        return True
    if command in ("predict", "batch"):
        return kind not in TEXT_BREAKING
    return False


# ---------------------------------------------------------------------------- the matrix
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_data_check(kinds, kind):
    path = kinds[kind]
    code, out, err = run_cli("data", "check", path, "--task", "merchant")
    assert "Traceback" not in out + err
    if _accepts("check", kind):
        assert code == 0, out
    else:
        assert code == 1, out
        assert f"{path.name}:" in out.replace("\n", "")


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_score_gold(kinds, kind, tmp_path):
    path = kinds[kind]
    report = tmp_path / "report.json"
    code, out, err = run_cli("score", path, path, "--task", "merchant", "--out", report)
    if _accepts("score", kind):
        assert code == 0, err
    else:
        assert_clean_error(code, err, path)
        assert not report.exists()


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_predict_input(kinds, kind, toy_run, tmp_path):
    path = kinds[kind]
    out_file = tmp_path / "preds.jsonl"
    code, out, err = run_cli("predict", toy_run, "--input", path, "--output", out_file)
    if _accepts("predict", kind):
        assert code == 0, err
        assert out_file.exists()
    else:
        assert_clean_error(code, err, path)
        assert list(tmp_path.iterdir()) == []  # no output, no temporary file


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_batch_input(kinds, kind, toy_run, tmp_path):
    path = kinds[kind]
    out_file = tmp_path / "out" / "batch.jsonl"
    code, out, err = run_cli("batch", toy_run, "-i", path, "-o", out_file)
    if _accepts("batch", kind):
        assert code == 0, err
    else:
        assert_clean_error(code, err, path)
        assert not (tmp_path / "out").exists()  # not even a lock file or a folder


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_convert_to_alpaca(kinds, kind, tmp_path):
    path = kinds[kind]
    dest = tmp_path / "alpaca"
    code, out, err = run_cli("data", "convert", path, dest, "--task", "merchant")
    if _accepts("convert", kind):
        assert code == 0, err
    else:
        assert_clean_error(code, err, path)
        assert not dest.exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_train_crf(kinds, kind, tmp_path):
    path = kinds[kind]
    run = tmp_path / "run"
    sample = DATA / "merchant_sample.jsonl"
    code, out, err = run_cli("train", DATA.parent.parent / "configs" / "crf-smoke.yaml",
                             "--set", f"data.train={path}", "--set", f"data.validation={sample}",
                             "--set", "data.test=null", "--set", "train.max_iterations=3",
                             "--set", "train.checkpoint_every=3", "--output-dir", run)
    if _accepts("train", kind):
        assert code == 0, err
    else:
        assert_clean_error(code, err, path)
        assert not run.exists()  # refused before the run directory was created


@pytest.mark.slow
def test_serve_requests_never_5xx(kinds, toy_run):
    """Line 2 of every broken file (the broken record) sent as a request body: a 4xx with a detail."""
    import httpx

    from finextract.serve.config import ServeConfig
    from finextract.serve.server import BackgroundServer

    with BackgroundServer(ServeConfig(run_dir=str(toy_run), port=0, access_log=False)) as url:
        for kind in KIND_NAMES:
            lines = kinds[kind].read_bytes().split(b"\n")
            body = lines[1] if len(lines) > 1 else lines[0]
            if kind in ACCEPTED or kind == "duplicate-text":
                body = lines[0].removeprefix(b"\xef\xbb\xbf")
            r = httpx.post(f"{url}/v1/extract", content=body, headers={"content-type": "application/json"})
            if kind in TEXT_BREAKING or json.loads(body or b"null").__class__ is not dict or b'"fields"' in body:
                assert 400 <= r.status_code < 500, (kind, r.status_code, r.text)  # ('fields' is an unknown field)
                assert isinstance(r.json()["detail"], str) and r.json()["detail"], kind
            else:  # e.g. missing-field: {"text": "..."} alone is a valid request
                assert r.status_code == 200 and len(r.json()["results"]) == 1, (kind, r.text)
            if kind not in ("empty-file",):
                text = json.dumps({"text": "SQ *ABC CA"}).encode()
                assert httpx.post(f"{url}/v1/extract", content=text,
                                  headers={"content-type": "application/json"}).status_code == 200


# ---------------------------------------------------------------------------- other section-8 cases
def _text_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    """(file, expected error substring) for text inputs in every format."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    cases = {}
    pq.write_table(pa.table({"text": [1, 2, 3]}), root / "ints.parquet")
    cases["parquet-int-column"] = (root / "ints.parquet", "holds int64, not strings")
    (root / "huge.csv").write_text("id,text\n1,ok\n2," + "A" * 300_000 + "\n", encoding="utf-8")
    cases["huge-csv-field"] = (root / "huge.csv", "huge.csv:3")
    (root / "bad.txt").write_bytes(b"SQ *OK CA\ncaf\xe9 CA\n")
    cases["txt-not-utf8"] = (root / "bad.txt", "bad.txt:2: not valid UTF-8")
    (root / "bad.csv").write_bytes(b"text\nSQ *OK CA\ncaf\xe9 CA\n")
    cases["csv-not-utf8"] = (root / "bad.csv", "bad.csv:3: not valid UTF-8")
    (root / "nul.txt").write_bytes(b"SQ *OK CA\nA\x00B\n")
    cases["txt-nul"] = (root / "nul.txt", "nul.txt:2")
    (root / "long.txt").write_bytes(b"SQ *OK CA\n" + b"B" * 5_000_000 + b"\n")
    cases["txt-huge-line"] = (root / "long.txt", "long.txt:2")
    (root / "empty.txt").write_bytes(b"\n\n")
    cases["empty-txt"] = (root / "empty.txt", "no texts")
    (root / "header.csv").write_bytes(b"text\n")
    cases["csv-header-only"] = (root / "header.csv", "no texts")
    (root / "nocol.csv").write_bytes(b"memo\nSQ *OK CA\n")
    cases["csv-no-column"] = (root / "nocol.csv", "no column 'text'")
    (root / "notparquet.parquet").write_bytes(b"PAR1 garbage")
    cases["garbage-parquet"] = (root / "notparquet.parquet", "not a readable Parquet file")
    return cases


TEXT_CASES = ["parquet-int-column", "huge-csv-field", "txt-not-utf8", "csv-not-utf8", "txt-nul", "txt-huge-line",
              "empty-txt", "csv-header-only", "csv-no-column", "garbage-parquet"]


@pytest.fixture(scope="module")
def text_inputs(tmp_path_factory):
    return _text_inputs(tmp_path_factory.mktemp("texts"))


@pytest.mark.parametrize("case", TEXT_CASES)
@pytest.mark.parametrize("command", ["predict", "batch"])
def test_text_inputs_same_rule_in_predict_and_batch(text_inputs, toy_run, tmp_path, case, command):
    path, needle = text_inputs[case]
    out_file = tmp_path / "o.jsonl"
    args = (["predict", toy_run, "--input", path, "-o", out_file] if command == "predict"
            else ["batch", toy_run, "-i", path, "-o", out_file])
    code, out, err = run_cli(*args)
    assert_clean_error(code, err, path, expect_location=False)
    assert needle in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["predict", "batch"])
def test_bom_accepted_by_predict_and_batch_alike(toy_run, tmp_path, command):
    for name, data in [("b.jsonl", b'\xef\xbb\xbf{"text": "SQ *ABC CA"}\n'), ("b.txt", b"\xef\xbb\xbfSQ *ABC CA\n"),
                       ("b.csv", b"\xef\xbb\xbftext\nSQ *ABC CA\n")]:
        src = tmp_path / name
        src.write_bytes(data)
        out_file = tmp_path / f"{name}.out.jsonl"
        args = (["predict", toy_run, "--input", src, "-o", out_file] if command == "predict"
                else ["batch", toy_run, "-i", src, "-o", out_file])
        code, _, err = run_cli(*args)
        assert code == 0, err
        first = json.loads(out_file.read_text(encoding="utf-8").splitlines()[0])
        assert first["text"] == "SQ *ABC CA"


def test_output_directory_refused_before_inference(toy_run, tmp_path, monkeypatch):
    monkeypatch.setenv("FX_TOY_DELAY", "30")  # inference would take 30 s
    src = tmp_path / "in.txt"
    src.write_text("SQ *ABC CA\n", encoding="utf-8")
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    for args in (["predict", toy_run, "--input", src, "-o", folder], ["batch", toy_run, "-i", src, "-o", folder],
                 ["predict", toy_run, "SQ *ABC CA", "-o", folder],
                 ["score", DATA / "merchant_sample.jsonl", DATA / "merchant_sample.jsonl", "--out", folder]):
        t0 = time.monotonic()
        code, _, err = run_cli(*args)
        assert time.monotonic() - t0 < 10, "the output path must be checked before the model runs"
        assert_clean_error(code, err, folder, expect_location=False)
        assert "is a directory" in err


def test_error_printer_keeps_markup_verbatim(tmp_path):
    odd = tmp_path / "memo[/bold][code]x.jsonl"
    code, _, err = run_cli("score", odd, odd)
    assert code != 0 and "Traceback" not in err
    assert "memo[/bold][code]x.jsonl" in err, err


def test_predict_and_batch_agree_on_empty_input(toy_run, tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    codes = [run_cli("predict", toy_run, "--input", src)[0], run_cli("batch", toy_run, "-i", src, "-o", tmp_path / "o.jsonl")[0]]
    assert codes == [2, 2]


def test_argument_texts_checked_too(toy_run):
    for bad, needle in [("   ", "is empty"), ("A" * 1001, "over the limit"), ("a\udc80b", "surrogate")]:
        code, _, err = run_cli("predict", toy_run, "SQ *OK CA", bad)
        assert code == 2 and needle in err and "text argument 2" in err, err


def test_alpaca_dataset_info_errors_name_the_file(tmp_path):
    folder = tmp_path / "alp"
    folder.mkdir()
    (folder / "dataset_info.json").write_text('{"d": {"formatting": "alpaca"}}', encoding="utf-8")
    dst = tmp_path / "back.jsonl"
    code, _, err = run_cli("data", "convert", folder, dst, "--task", "merchant")
    assert_clean_error(code, err, folder / "dataset_info.json")
    assert "no 'file_name'" in err and not dst.exists()
    (folder / "dataset_info.json").write_text('{"d": {"file_name": "d.json"}, "d": {}}', encoding="utf-8")
    code, _, err = run_cli("data", "convert", folder, dst, "--task", "merchant")
    assert_clean_error(code, err, folder / "dataset_info.json")
    assert "duplicate key" in err


def test_failing_alpaca_conversion_leaves_destination_untouched(tmp_path):
    src = tmp_path / "a.json"
    good = {"instruction": "SQ *ABC CA", "input": "", "output": "{}"}
    bad = {"instruction": "SQ *ABC CA", "input": "", "output": '{"CITY": "NOT IN TEXT"}'}
    src.write_text(json.dumps([good, bad]), encoding="utf-8")
    dst = tmp_path / "records.jsonl"
    dst.write_text("precious\n", encoding="utf-8")
    code, _, err = run_cli("data", "convert", src, dst, "--task", "merchant")
    assert_clean_error(code, err, src, expect_location=False)
    assert "not-substring" in err
    assert dst.read_text(encoding="utf-8") == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "records.jsonl"]


@pytest.mark.slow
def test_real_process_prints_one_line_and_no_traceback(kinds, toy_run, tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    for kind in ("not-utf8", "invalid-unicode", "duplicate-key"):
        res = subprocess.run(toy_cli_command("batch", str(toy_run), "-i", str(kinds[kind]),
                                             "-o", str(tmp_path / "o.jsonl")),
                             capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and f"{kind}.jsonl:2" in res.stderr, res.stderr


# ---------------------------------------------------------------------------- damaged run directories
@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory) -> Path:
    """An untrained 1-layer encoder in a real run directory (its files are what matters here)."""
    from finextract.backends.encoder.config import EncoderRunConfig
    from finextract.backends.encoder.model import build_model, load_tokenizer, make_tagger, save_model
    from finextract.backends.encoder.testing import build_tiny_encoder
    from finextract.rundir import RunDir, mark_checkpoint_complete

    base = tmp_path_factory.mktemp("enc")
    bert = build_tiny_encoder(base / "bert", layers=1, pretrained=False, hidden=32)
    root = base / "run"
    cfg = EncoderRunConfig.model_validate({"backend": "encoder", "task": "merchant", "output_dir": str(root),
                                           "model": {"name_or_path": str(bert), "max_length": 32}})
    task = cfg.load_task()
    run = RunDir(root).create(cfg)
    ckpt = run.checkpoint_path(1)
    save_model(make_tagger(build_model(cfg, task), cfg.model.case_features), load_tokenizer(str(bert)), ckpt, task,
               lora=False)
    mark_checkpoint_complete(ckpt)
    run.set_best("step-1", 1, 0.0)
    return root


DAMAGED = ["checkpoints/step-1/model/model.safetensors", "checkpoints/step-1/model/config.json",
           "checkpoints/step-1/labels.json", "checkpoints/step-1/model/tokenizer.json", "config.yaml", "best.json"]


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    elif how == "garbage":
        path.write_bytes(os.urandom(2048))
    elif how == "nul":
        path.write_bytes(path.read_bytes() + b"\x00\n")
    else:
        path.unlink()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "garbage", "missing", "nul"])
@pytest.mark.parametrize("target", DAMAGED)
def test_damaged_run_files_name_the_file(encoder_run, tmp_path, target, how, monkeypatch):
    import shutil

    import uvicorn

    def never_serve(self, *a, **k):
        raise AssertionError("the damaged run loaded: the server would have started")

    monkeypatch.setattr(uvicorn.Server, "run", never_serve)
    run = tmp_path / "run"
    shutil.copytree(encoder_run, run)
    path = run / target
    _damage(path, how)
    # a config cut at a line boundary can still be valid YAML whose missing fields would take their
    # defaults: its sha256 in versions.json (written with it) refuses it by name
    if target == "best.json" and how == "missing":  # no best.json: the newest checkpoint is used
        assert run_cli("predict", run, "SQ *ABC CA")[0] == 0
        return
    for args in (["predict", run, "SQ *ABC CA"], ["serve", run, "--port", "1"]):
        code, out, err = run_cli(*args)
        assert code == 2, (args, err)
        assert "Traceback" not in err and err.startswith("error:"), err
        assert (path.name if target != "config.yaml" or how != "missing" else "config.yaml") in err, err
