"""Bounded loopback soak of ``finextract serve`` (stops by itself; 127.0.0.1 only).

Starts the server in its own process the way it is deployed (an API key, JSON access log on),
then sends ``--requests`` requests (default 5,000) at 8 and at 64 concurrent clients, each
level capped at ``--max-seconds`` (60). One text per request; ``--bad-share`` of them (2 %)
are deliberately malformed (wrong shape: 422) so bad clients are part of the load.

Checked per level: every request got an HTTP answer (nothing dropped or reset), none was 5xx,
every good request got a valid 200 and every bad one its 422, and the server's own
``finextract_requests_total`` grew by exactly the number sent. Reported: requests/s,
p50/p99 latency of the good requests, and the server's RSS before and after each level
(a leak shows as RSS growing level after level).

Prints a table and writes benchmarks/results/serve_soak.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import log, make_data, pct, texts_of, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PY = sys.executable


async def soak(url: str, headers: dict, texts: list[str], clients: int, n_requests: int, max_seconds: float,
               bad_every: int) -> dict:
    lat: list[float] = []
    statuses: Counter = Counter()
    wrong: list[str] = []
    next_id = 0
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:
        async def worker() -> None:
            nonlocal next_id
            while next_id < n_requests and time.perf_counter() < deadline:
                i = next_id
                next_id += 1
                bad = bad_every and i % bad_every == bad_every - 1
                body = {"txt": texts[i % len(texts)]} if bad else {"text": texts[i % len(texts)]}
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"{url}/v1/extract", json=body)
                except httpx.HTTPError as exc:
                    statuses[f"dropped:{type(exc).__name__}"] += 1
                    continue
                statuses[r.status_code] += 1
                if bad:
                    if r.status_code != 422:
                        wrong.append(f"bad request {i} got {r.status_code}")
                elif r.status_code == 200 and r.json()["results"][0]["error"] is None:
                    lat.append(time.perf_counter() - t0)
                else:
                    wrong.append(f"request {i} got {r.status_code}: {r.text[:100]}")
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    sent = sum(statuses.values())
    return {"clients": clients, "sent": sent, "completed_all": sent == n_requests,
            "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "server_5xx": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500),
            "dropped": sum(v for k, v in statuses.items() if isinstance(k, str)),
            "wrong_answers": len(wrong), "wrong_examples": wrong[:5], "wall_s": round(wall, 2),
            "rps": round(sent / wall, 1), "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
            "p99_ms": round(1000 * pct(lat, 99), 1) if lat else None}


def server_counted(url: str, headers: dict) -> int:
    total = 0
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        if line.startswith("finextract_requests_total{"):
            total += int(float(line.split()[-1]))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["crf", "encoder"], default="crf")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--levels", default="8,64")
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--bad-share", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=1, help="torch/OMP threads of the server process")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fx-soak-"))
    data = make_data(work, 2000)
    run = train(work, data, args.model, 40)
    texts = texts_of(data / "train.jsonl", 2000)

    from finextract.serve.server import free_port
    from finextract.testing.server import stop_process, wait_healthy

    key = secrets.token_urlsafe(32)
    key_file = work / "api.key"
    key_file.write_text(key, encoding="utf-8")
    headers = {"Authorization": f"Bearer {key}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    access_log = work / "access.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "FINEXTRACT_LOG": "WARNING"}
    with access_log.open("w") as err:
        proc = subprocess.Popen([PY, "-m", "finextract", "serve", str(run), "--host", "127.0.0.1", "--port", str(port),
                                 "--api-key-file", str(key_file), "--log-level", "warning"],
                                env=env, stderr=err, start_new_session=True)
    bad_every = round(1 / args.bad_share) if args.bad_share > 0 else 0
    rows = []
    try:
        wait_healthy(url, proc, timeout=120, interval=0.3)
        assert httpx.post(f"{url}/v1/extract", json={"text": texts[0]}).status_code == 401  # the key is on
        ps = psutil.Process(proc.pid)
        asyncio.run(soak(url, headers, texts, 8, 200, 20, 0))  # warm-up
        for clients in [int(c) for c in args.levels.split(",")]:
            before_counted = server_counted(url, headers)
            rss0 = ps.memory_info().rss
            res = asyncio.run(soak(url, headers, texts, clients, args.requests, args.max_seconds, bad_every))
            res["rss_before_mb"] = round(rss0 / 2**20, 1)
            res["rss_after_mb"] = round(ps.memory_info().rss / 2**20, 1)
            res["server_counted"] = server_counted(url, headers) - before_counted
            rows.append(res)
            log(f"{clients} clients: {res}")
    finally:
        stop_process(proc)
    lines = access_log.read_text(encoding="utf-8").splitlines()
    access = [json.loads(x) for x in lines if x.startswith("{")]
    tracebacks = sum("Traceback" in x for x in lines)
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": args.model,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, SHARED with other jobs (load {os.getloadavg()[0]:.1f})",
        "server": "finextract serve in its own process, API key on, JSON access log on, h11, 1 worker",
        "client": "httpx AsyncClient in another process on the same cores, one text per request",
        "requests_per_level": args.requests, "max_seconds": args.max_seconds, "bad_share": args.bad_share,
        "levels": rows, "access_log_lines": len(access), "server_tracebacks": tracebacks,
        "passed": all(r["completed_all"] and r["server_5xx"] == 0 and r["dropped"] == 0 and r["wrong_answers"] == 0
                      and r["server_counted"] == r["sent"] for r in rows) and tracebacks == 0,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_soak.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    table = ["| clients | sent | 5xx | dropped | wrong | server counted | s | req/s | p50 ms | p99 ms | RSS before → after MB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        table.append(f"| {r['clients']} | {r['sent']} | {r['server_5xx']} | {r['dropped']} | {r['wrong_answers']} | "
                     f"{r['server_counted']} | {r['wall_s']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['rss_before_mb']} → {r['rss_after_mb']} |")
    md = "\n".join([f"Serve soak, {out['date']}, model {args.model}; {out['machine']}.", "", *table, "",
                    f"access-log lines: {len(access)}; server tracebacks: {tracebacks}; passed: {out['passed']}"])
    (RESULTS / "serve_soak.md").write_text(md + "\n", encoding="utf-8")
    print(md)
    sys.exit(0 if out["passed"] else 1)


if __name__ == "__main__":
    main()
