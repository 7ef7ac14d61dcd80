"""``finextract serve RUN_DIR``: HTTP service with micro-batching and Prometheus metrics."""

from __future__ import annotations

import typer

from finextract.runtime import RUNTIME_HELP


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve_cmd(
        run_dir: str = typer.Argument(..., help="trained run directory to serve"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        host: str = typer.Option("127.0.0.1", help="interface to bind (0.0.0.0 exposes it to the network)"),
        port: int = typer.Option(8000, help="TCP port"),
        max_batch: int = typer.Option(64, help="most texts per model call (requests are micro-batched)"),
        max_wait_ms: float = typer.Option(5.0, help="how long a queued text waits for others to batch with"),
        timeout_s: float = typer.Option(30.0, help="per-request deadline (504 after it)"),
        max_texts: int = typer.Option(256, help="most texts per request (413 above)"),
        max_chars: int | None = typer.Option(None, help="longest text accepted (default: the task's max_text_chars)"),
        graceful_shutdown_s: float = typer.Option(30.0, help="on SIGTERM, wait this long for in-flight requests"),
        log_level: str = typer.Option("info", help="uvicorn log level"),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
    ) -> None:
        """Serve a trained run over HTTP.

        POST /v1/extract with {"text": "..."} or {"texts": [...]}; GET /health; GET /metrics
        (Prometheus); interactive docs at /docs. Concurrent requests share model calls
        (micro-batching); SIGTERM drains in-flight requests before exiting.
        """
        from pydantic import ValidationError

        from finextract.errors import UserError
        from finextract.serve.config import ServeConfig
        from finextract.serve.server import run_server

        try:
            cfg = ServeConfig(run_dir=run_dir, checkpoint=checkpoint, host=host, port=port, max_batch=max_batch,
                              max_wait_ms=max_wait_ms, timeout_s=timeout_s, max_texts=max_texts,
                              max_chars=max_chars, graceful_shutdown_s=graceful_shutdown_s, runtime=runtime)
        except ValidationError as exc:
            raise UserError(f"invalid server setting:\n{exc}") from exc
        run_server(cfg, log_level=log_level)
