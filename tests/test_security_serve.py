"""The service under hostile clients: auth, body/JSON limits, slow clients, disconnects, logs.

Each test replays one probe of issue 14 against a real uvicorn server on a loopback port and
would fail if the finding came back (a 500, an unbounded read, a path or traceback leaked).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time

import httpx
import pytest

from test_serve_toy import TEXTS, make_toy_run, toy_cli_command

from finextract.testing.server import wait_healthy
from finextract.serve.config import ServeConfig
from finextract.serve.server import BackgroundServer, free_port, warn_if_exposed

pytestmark = pytest.mark.slow
KEY = "k3y-for-tests-0123456789abcdef"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return make_toy_run(tmp_path_factory.mktemp("secserve") / "toy")


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "api.key"
    path.write_text(KEY + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server(toy_run):
    cfg = ServeConfig(run_dir=str(toy_run), port=0, max_body_bytes=64 * 1024, header_timeout_s=0.5,
                      body_timeout_s=0.5, access_log=False)
    bg = BackgroundServer(cfg)
    with bg as url:
        yield url, bg


def _metric(url: str, name: str, headers: dict | None = None) -> dict[str, float]:
    out = {}
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name):]] = float(value)
    return out


def test_bearer_token_required_except_health(toy_run, key_file):
    cfg = ServeConfig(run_dir=str(toy_run), port=0, api_key_file=str(key_file), access_log=False)
    with BackgroundServer(cfg) as url:
        body = {"text": TEXTS[1]}
        assert httpx.post(f"{url}/v1/extract", json=body).status_code == 401
        r = httpx.post(f"{url}/v1/extract", json=body, headers={"Authorization": "Bearer wrong-key-wrong-key"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert httpx.post(f"{url}/v1/extract", json=body, headers={"Authorization": KEY}).status_code == 401
        ok = httpx.post(f"{url}/v1/extract", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and ok.json()["results"][0]["valid"]
        assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/health").json()["auth"]
        for path in ("/metrics", "/openapi.json"):
            assert httpx.get(f"{url}{path}").status_code == 401, path
        counts = _metric(url, "finextract_requests_total", {"Authorization": f"Bearer {KEY}"})
        assert counts['{status="401"}'] == 3 and counts['{status="200"}'] == 1
    cfg = cfg.model_copy(update={"port": 0, "metrics_public": True})
    with BackgroundServer(cfg) as url:
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert httpx.get(f"{url}/openapi.json").status_code == 401


def test_api_key_from_environment_and_bad_key_files(toy_run, tmp_path, monkeypatch):
    from finextract.serve.config import load_api_key

    monkeypatch.setenv("FINEXTRACT_API_KEY", KEY)
    with BackgroundServer(ServeConfig(run_dir=str(toy_run), port=0, access_log=False)) as url:
        assert httpx.post(f"{url}/v1/extract", json={"text": "x"}).status_code == 401
        assert httpx.post(f"{url}/v1/extract", json={"text": "x"},
                          headers={"authorization": f"bearer {KEY}"}).status_code == 200
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="empty.key: the API key file is empty"):
        load_api_key(ServeConfig(run_dir="x", api_key_file=str(empty)))
    monkeypatch.setenv("FINEXTRACT_API_KEY", "short")
    with pytest.raises(ValueError, match="at least 16"):
        load_api_key(ServeConfig(run_dir="x"))


def test_exposed_without_key_warns(caplog, monkeypatch):
    monkeypatch.delenv("FINEXTRACT_API_KEY", raising=False)
    assert ServeConfig(run_dir="x").host == "127.0.0.1"
    with caplog.at_level("WARNING", logger="finextract.serve"):
        assert warn_if_exposed(ServeConfig(run_dir="x", host="0.0.0.0"))
    assert "without an API key" in caplog.text
    assert not warn_if_exposed(ServeConfig(run_dir="x", host="127.0.0.1"))
    monkeypatch.setenv("FINEXTRACT_API_KEY", KEY)
    assert not warn_if_exposed(ServeConfig(run_dir="x", host="0.0.0.0"))


def test_body_limit_from_content_length_and_while_reading(server):
    url, bg = server
    r = httpx.post(f"{url}/v1/extract", content=b"{" + b" " * (200 * 1024) + b"}",
                   headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]
    # chunked (no Content-Length): refused once 64 KiB passed, long before the 50 MB are sent
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
        sent, reply = 0, b""
        s.settimeout(0.05)
        while sent < 50 * 1024 * 1024:
            try:
                s.sendall(chunk)
                sent += 16384
                reply += s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if reply:
                break
        s.settimeout(5)
        try:
            reply += s.recv(4096)
        except OSError:
            pass
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert sent < 4 * 1024 * 1024, f"server read {sent} bytes before refusing"


@pytest.mark.parametrize("body, needle", [
    (b"[" * 30_000 + b"]" * 30_000, "too deeply"),
    (b'{"text": ' + b"9" * 5000 + b"}", "digits"),
    (b'{"text": "a", "text": "b"}', "duplicate key 'text'"),
    (b'{"text": NaN}', "NaN"),
    (b'{"text": "\xff\xfe"}', "not valid JSON"),
])
def test_hostile_json_is_400_never_500(server, body, needle):
    url, _ = server
    r = httpx.post(f"{url}/v1/extract", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"]


def test_lone_surrogate_text_is_422(server):
    url, _ = server
    r = httpx.post(f"{url}/v1/extract", content=b'{"text": "ab \\ud800 cd"}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and "surrogate" in r.json()["detail"]


def test_every_status_counted_including_500_and_404(server):
    url, bg = server

    async def boom():
        raise RuntimeError("/secret/path/inside/the/server")

    if not any(getattr(r, "path", "") == "/boom" for r in bg.app.routes):
        bg.app.add_api_route("/boom", boom)
    r = httpx.get(f"{url}/boom")
    assert r.status_code == 500
    assert "secret" not in r.text and "Traceback" not in r.text
    assert httpx.get(f"{url}/nope").status_code == 404
    counts = _metric(url, "finextract_http_responses_total")
    assert counts['{path="other",status="500"}'] >= 1
    assert counts['{path="other",status="404"}'] >= 1


def test_no_paths_in_health_or_failures(server, toy_run):
    url, _ = server
    text = httpx.get(f"{url}/health").text
    assert str(toy_run) not in text and "/tmp" not in text and "run_dir" not in text
    r = httpx.post(f"{url}/v1/extract", json={"text": "SHELL __FAIL__"}).json()["results"][0]
    assert r["valid"] is False and "model failure" in r["error"] and "/" not in r["error"]


def test_docs_page_off_openapi_kept(server):
    url, _ = server
    assert httpx.get(f"{url}/docs").status_code == 404
    assert httpx.get(f"{url}/redoc").status_code == 404
    spec = httpx.get(f"{url}/openapi.json")
    assert spec.status_code == 200 and "cdn" not in spec.text.lower()


def _hostport(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def test_slow_headers_and_slow_body_are_cut_off(server):
    url, _ = server
    t0 = time.monotonic()
    with socket.create_connection(_hostport(url), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert s.recv(100) == b""  # closed by the header timer (0.5 s), not after 25 s
    assert time.monotonic() - t0 < 3
    with socket.create_connection(_hostport(url), timeout=5) as s:
        s.sendall(b"POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"text\": ")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    # a normal keep-alive client is unaffected
    with httpx.Client() as c:
        for _ in range(3):
            assert c.get(f"{url}/health").status_code == 200
            time.sleep(0.6)


def test_served_process_logs_json_lines_without_texts_or_tracebacks(toy_run, tmp_path):
    port = free_port()
    args = toy_cli_command("serve", str(toy_run), "--port", str(port), "--header-timeout-s", "1",
                           "--body-timeout-s", "1")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FINEXTRACT_API_KEY": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=60, interval=0.2)
        secret = "SECRET MEMO TEXT 4711"
        assert httpx.post(f"{url}/v1/extract", json={"text": secret}).status_code == 200
        for _ in range(3):  # clients that vanish mid-body
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 1000\r\n\r\n{\"text\": \"abc")
            time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", port)) as s:  # and one that vanishes mid-headers
            s.sendall(b"POST /v1/extract HTTP/1.1\r\nHo")
        time.sleep(0.5)
        assert httpx.post(f"{url}/v1/extract", content=b"[" * 50_000,
                          headers={"content-type": "application/json"}).status_code == 400
        metrics = httpx.get(f"{url}/metrics").text
        assert re.search(r'finextract_requests_total\{status="499"\} 3\.0', metrics), metrics
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert secret not in err
    access = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    statuses = [row["status"] for row in access if row["path"] == "/v1/extract"]
    assert statuses.count(200) == 1 and statuses.count(499) == 3 and statuses.count(400) == 1, access
    assert all({"time", "client", "method", "path", "status", "ms"} <= set(row) for row in access)
    assert any(row.get("n_texts") == 1 for row in access)


def test_access_log_has_texts_only_when_asked(toy_run, caplog):
    for log_texts in (False, True):
        caplog.clear()
        cfg = ServeConfig(run_dir=str(toy_run), port=0, access_log=True, log_texts=log_texts)
        with caplog.at_level("INFO", logger="finextract.access"), BackgroundServer(cfg) as url:
            assert httpx.post(f"{url}/v1/extract", json={"texts": ["MEMO ONE 123", "MEMO TWO 456"]}).status_code == 200
        rows = [json.loads(r.getMessage()) for r in caplog.records if r.name == "finextract.access"]
        row = next(r for r in rows if r["path"] == "/v1/extract")
        assert row["status"] == 200 and row["n_texts"] == 2 and row["body_bytes"] > 0
        assert ("MEMO ONE 123" in json.dumps(rows)) is log_texts
        assert row.get("texts") == (["MEMO ONE 123", "MEMO TWO 456"] if log_texts else None)


def test_many_slow_connections_are_dropped_and_service_continues(server):
    """The probe held 600 slow connections for 25 s; here 100 are all closed by the header timer."""
    url, _ = server
    socks = []
    try:
        for _ in range(100):
            s = socket.create_connection(_hostport(url), timeout=5)
            s.sendall(b"POST /v1/extract HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            socks.append(s)
        assert httpx.post(f"{url}/v1/extract", json={"text": TEXTS[1]}, timeout=10).status_code == 200
        time.sleep(1.5)  # header_timeout_s = 0.5
        closed = 0
        for s in socks:
            s.settimeout(2)
            try:
                closed += s.recv(10) == b""
            except socket.timeout:  # still open: the finding is back
                pass
            except OSError:  # reset by the server
                closed += 1
        assert closed == len(socks)
    finally:
        for s in socks:
            s.close()
