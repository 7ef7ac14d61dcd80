"""Serving and scale-out benchmark (bounded, loopback only, stops by itself).

1. Trains a small run of the default model (encoder: the bundled MiniLM-L6, a few dozen
   steps on generated descriptors -- accuracy is irrelevant here, the network's size is
   what costs time); ``--model crf`` uses the CRF instead.
2. Starts ``finextract serve`` in a subprocess on a free loopback port and drives it with
   1, 8 and 64 concurrent clients (one text per request) for ``--duration`` seconds each:
   sustained requests/s, p50/p99 latency, mean micro-batch size, errors/drops.
3. Extracts ``--rows`` texts with Spark ``local[2]`` (``finextract.spark.extract_column``)
   and with the single-process ``finextract batch``; rows/s of each.

``--run RUN`` serves an existing run instead of training one, and ``--runtimes torch,onnx``
measures the server (and ``finextract batch``) once per runtime in the same invocation, so the
ONNX fast path (``finextract export-onnx RUN`` first) is compared with PyTorch minutes apart.

Prints a table and writes benchmarks/results/{--name}.{json,md} (default serve_bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PY = sys.executable


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_data(work: Path, n: int) -> Path:
    out = work / "data"
    if not (out / "train.jsonl").exists():
        subprocess.run([PY, "-m", "finextract", "data", "synth", "-o", str(out), "--n", str(n), "--seed", "7"],
                       check=True, stdout=subprocess.DEVNULL)
    return out


def train(work: Path, data: Path, model: str, steps: int) -> Path:
    from finextract.backends import get_backend
    from finextract.config import load_run_config

    run = work / f"{model}-run"
    sets = [f"backend={model}", "task=merchant", f"output_dir={run}", f"data.train={data / 'train.jsonl'}",
            f"data.validation={data / 'validation.jsonl'}", "data.max_eval_records=100"]
    if model == "encoder":
        sets += [f"train.max_steps={steps}", f"train.checkpoint_every={steps}", "train.batch_size=16",
                 "train.num_threads=2", "train.progress=false", "train.learning_rate=1e-4",
                 "train.head_learning_rate=1e-3"]
    else:
        sets += ["train.max_iterations=50", "train.checkpoint_every=50"]
    t0 = time.time()
    get_backend(model).train(load_run_config(None, sets))
    log(f"trained {model} run in {time.time() - t0:.1f}s")
    return run


def texts_of(path: Path, n: int) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
            if len(out) >= n:
                break
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


async def drive(url: str, texts: list[str], clients: int, duration: float) -> dict:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"{url}/v1/extract", json={"text": texts[i % len(texts)]})
                    ok = r.status_code == 200 and r.json()["results"][0]["error"] is None
                except httpx.HTTPError:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
                i += clients
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lat), "errors": errors, "wall_s": round(wall, 2),
            "rps": round(len(lat) / wall, 1), "p50_ms": round(1000 * statistics.median(lat), 1),
            "p99_ms": round(1000 * pct(lat, 99), 1)}


def batch_hist(url: str) -> tuple[float, float]:
    count = total = 0.0
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("finextract_batch_size_count"):
            count = float(line.split()[-1])
        elif line.startswith("finextract_batch_size_sum"):
            total = float(line.split()[-1])
    return count, total


def bench_server(run: Path, texts: list[str], levels: list[int], duration: float, threads: int,
                 runtime: str = "torch") -> dict:
    from finextract.runtime import load_with_runtime
    from finextract.serve.server import free_port
    from finextract.testing.server import stop_process, wait_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "FINEXTRACT_LOG": "WARNING"}
    proc = subprocess.Popen([PY, "-m", "finextract", "serve", str(run), "--port", str(port), "--max-batch", "64",
                             "--max-wait-ms", "5", "--log-level", "warning", "--runtime", runtime, "--no-access-log"], env=env,
                            start_new_session=True)
    try:
        wait_healthy(url, proc, timeout=120, interval=0.3)
        # correctness first: served == offline on 200 texts
        sample = texts[:200]
        served = httpx.post(f"{url}/v1/extract", json={"texts": sample}, timeout=120).json()["results"]
        offline = load_with_runtime(run, None, runtime).predict(sample)
        same = sum(r["fields"] == o for r, o in zip(served, offline))
        equal = same == len(sample)  # dynamic int8 is batch-dependent (per-batch activation scales): see docs
        asyncio.run(drive(url, texts, 8, 2.0))  # warm-up
        rows = []
        for c in levels:
            c0, s0 = batch_hist(url)
            res = asyncio.run(drive(url, texts, c, duration))
            c1, s1 = batch_hist(url)
            res["mean_batch"] = round((s1 - s0) / max(1.0, c1 - c0), 1)
            rows.append(res)
            log(f"{c} clients: {res}")
        return {"runtime": runtime, "served_equals_offline_200": equal, "served_equal_offline_count": same, "levels": rows, "server_threads": threads}
    finally:
        stop_process(proc)


def bench_batch(run: Path, texts: list[str], work: Path, runtime: str, workers: int = 1) -> dict:
    """``finextract batch`` wall time (interpreter start + model load included, like a real job);
    ``workers`` > 1 runs it with ``--workers`` (worker processes of one thread each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = work / "rows.parquet"
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), src, row_group_size=500)
    out = work / f"batch_out_{runtime}_w{workers}.jsonl"
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    t0 = time.perf_counter()
    subprocess.run([PY, "-m", "finextract", "batch", str(run), "-i", str(src), "-o", str(out), "--batch-size", "64",
                    "--runtime", runtime, "--workers", str(workers)], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    secs = time.perf_counter() - t0
    return {"runtime": runtime, "workers": workers, "rows": len(texts), "batch_s": round(secs, 2), "batch_rows_per_s": round(len(texts) / secs, 1)}


def bench_spark_vs_batch(run: Path, texts: list[str], work: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = work / "rows.parquet"
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), src, row_group_size=500)
    out = work / "batch_out.jsonl"
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    t0 = time.perf_counter()
    subprocess.run([PY, "-m", "finextract", "batch", str(run), "-i", str(src), "-o", str(out),
                    "--batch-size", "64"], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    batch_s = time.perf_counter() - t0  # includes interpreter start + model load, like a real job

    os.environ["OMP_NUM_THREADS"] = "1"  # 2 Spark Python workers x 1 thread = the 2 cores
    os.environ.setdefault("PYSPARK_PYTHON", PY)
    from pyspark.sql import SparkSession

    from finextract.spark import extract_column

    spark = (SparkSession.builder.master("local[2]").appName("fx-bench").config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.executorEnv.OMP_NUM_THREADS", "1").getOrCreate())
    try:
        df = spark.read.parquet(str(src)).repartition(2)
        df.cache().count()
        t0 = time.perf_counter()
        res = extract_column(df, str(run), batch_size=64)
        res.write.mode("overwrite").parquet(str(work / "spark_out"))
        spark_s = time.perf_counter() - t0  # includes the per-worker model loads
        n_out = spark.read.parquet(str(work / "spark_out")).count()
    finally:
        spark.stop()
    return {"rows": len(texts), "batch_s": round(batch_s, 2), "batch_rows_per_s": round(len(texts) / batch_s, 1),
            "spark_s": round(spark_s, 2), "spark_rows_per_s": round(len(texts) / spark_s, 1),
            "spark_over_batch": round(batch_s / spark_s, 2), "spark_rows_out": n_out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["encoder", "crf"], default="encoder")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level")
    ap.add_argument("--levels", default="1,8,64")
    ap.add_argument("--rows", type=int, default=2000, help="rows for Spark vs batch")
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--server-threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--run", type=Path, help="serve this existing run instead of training one")
    ap.add_argument("--texts", type=Path, help="JSONL of texts to send (default: the generated training split)")
    ap.add_argument("--runtimes", default="torch", help="comma-separated server runtimes: torch, onnx")
    ap.add_argument("--batch-workers", default="1", help="comma-separated `finextract batch --workers` values to "
                    "measure per runtime, e.g. 1,2")
    ap.add_argument("--name", default="serve_bench", help="results file stem")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="fx-serve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.run:
        run = args.run
        texts = texts_of(args.texts, args.rows) if args.texts else None
        if texts is None:
            raise SystemExit("--run needs --texts FILE.jsonl")
    else:
        data = make_data(work, max(3000, args.rows + 1000))
        run = work / f"{args.model}-run"
        if not (run / "DONE").exists():
            run = train(work, data, args.model, args.train_steps)
        texts = texts_of(args.texts or data / "train.jsonl", args.rows)
    runtimes = args.runtimes.split(",")
    servers = [bench_server(run, texts, [int(x) for x in args.levels.split(",")], args.duration, args.server_threads, rt)
               for rt in runtimes]
    server = servers[0]
    batch_workers = [int(w) for w in args.batch_workers.split(",")]
    batches = ([bench_batch(run, texts, work, rt, w) for rt in runtimes for w in batch_workers]
               if len(runtimes) > 1 or runtimes != ["torch"] or batch_workers != [1] else [])
    spark = None if args.skip_spark else bench_spark_vs_batch(run, texts, work)
    result = {"model": args.model, "run": str(run), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "load_average_at_end": os.getloadavg(), "duration_s_per_level": args.duration, "server": server,
              "servers": servers, "batch": batches, "spark_vs_batch": spark,
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    lines = [f"model: {args.model} | server threads: {args.server_threads} | {os.cpu_count()} CPUs "
             f"(shared; load average at end {os.getloadavg()[0]:.1f})", "",
             "| runtime | clients | requests | errors | req/s | p50 ms | p99 ms | mean batch | served == offline (of 200) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for srv in servers:
        for r in srv["levels"]:
            lines.append(f"| {srv['runtime']} | {r['clients']} | {r['requests']} | {r['errors']} | {r['rps']} | "
                         f"{r['p50_ms']} | {r['p99_ms']} | {r['mean_batch']} | {srv['served_equal_offline_count']} |")
    if len(servers) > 1:
        base = {r["clients"]: r["rps"] for r in servers[0]["levels"]}
        for srv in servers[1:]:
            ratios = ", ".join(f"{r['clients']} clients x{r['rps'] / base[r['clients']]:.2f}" for r in srv["levels"]
                               if base.get(r["clients"]))
            lines.append(f"\n{srv['runtime']} vs {servers[0]['runtime']} req/s: {ratios}")
    if batches:
        lines += ["", "| finextract batch runtime | workers | rows | seconds (incl. start + load) | rows/s |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {b['runtime']} | {b.get('workers', 1)} | {b['rows']} | {b['batch_s']} | {b['batch_rows_per_s']} |"
                  for b in batches]
    if spark:
        lines += ["", "| job | rows | seconds | rows/s |", "|---|---:|---:|---:|",
                  f"| finextract batch (1 process, 2 threads) | {spark['rows']} | {spark['batch_s']} | "
                  f"{spark['batch_rows_per_s']} |",
                  f"| Spark local[2] extract_column (2 workers x 1 thread) | {spark['rows']} | {spark['spark_s']} | "
                  f"{spark['spark_rows_per_s']} |",
                  "", f"Spark / batch throughput ratio: {spark['spark_over_batch']}"]
    table = "\n".join(lines)
    (RESULTS / f"{args.name}.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
