"""``finextract serve RUN_DIR``: HTTP service with micro-batching and Prometheus metrics."""

from __future__ import annotations

import typer

from finextract.commands.loading import ENSEMBLE_HELP
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
        api_key_file: str | None = typer.Option(None, help="file holding the bearer token clients must send "
                                                           "(default: $FINEXTRACT_API_KEY; none: no auth)"),
        metrics_public: bool = typer.Option(False, help="serve /metrics without the API key"),
        max_body_bytes: int = typer.Option(4 << 20, help="largest request body in bytes (413 above)"),
        header_timeout_s: float = typer.Option(10.0, help="time a client has to send its request headers"),
        body_timeout_s: float = typer.Option(30.0, help="time a client has to send its request body (408 after)"),
        max_connections: int = typer.Option(1000, help="open connections at once (503 above)"),
        access_log: bool = typer.Option(True, help="one JSON line per request on stderr"),
        log_texts: bool = typer.Option(False, help="include request texts in the access log (customer data!)"),
        runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
        ensemble: list[str] = typer.Option([], "--ensemble", help=ENSEMBLE_HELP),
    ) -> None:
        """Serve a trained run over HTTP.

        POST /v1/extract with {"text": "..."} or {"texts": [...]}; GET /health; GET /metrics
        (Prometheus); GET /openapi.json (the /docs page is off: it loads CDN scripts).
        With an API key every route but /health needs 'Authorization: Bearer KEY'.
        Binds 127.0.0.1 unless told otherwise; put a TLS proxy in front (docs/serving.md).
        Concurrent requests share model calls (micro-batching); SIGTERM drains in-flight
        requests before exiting.
        """
        from pydantic import ValidationError

        from finextract.errors import UserError
        from finextract.serve.config import ServeConfig, load_api_key
        from finextract.serve.server import run_server

        try:
            cfg = ServeConfig(run_dir=run_dir, checkpoint=checkpoint, host=host, port=port, max_batch=max_batch,
                              max_wait_ms=max_wait_ms, timeout_s=timeout_s, max_texts=max_texts,
                              max_chars=max_chars, graceful_shutdown_s=graceful_shutdown_s,
                              api_key_file=api_key_file, metrics_public=metrics_public,
                              max_body_bytes=max_body_bytes, header_timeout_s=header_timeout_s,
                              body_timeout_s=body_timeout_s, max_connections=max_connections,
                              access_log=access_log, log_texts=log_texts, runtime=runtime,
                              ensemble=list(ensemble))
            load_api_key(cfg)  # a bad key file is refused before the model is loaded
        except ValidationError as exc:
            raise UserError(f"invalid server setting:\n{exc}") from exc
        except ValueError as exc:
            raise UserError(str(exc)) from None
        run_server(cfg, log_level=log_level)
