"""Running the app: in the foreground (CLI) or in a background thread (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from finextract.extractor import Extractor
from finextract.serve.app import create_app
from finextract.serve.config import ServeConfig


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _uvicorn_config(app, config: ServeConfig, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level,
                          timeout_graceful_shutdown=config.graceful_shutdown_s, access_log=False,
                          lifespan="on")


def run_server(config: ServeConfig, extractor: Extractor | None = None, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then stops accepting, lets in-flight requests finish,
    and the app's shutdown hook drains the batch queue."""
    app = create_app(config, extractor)
    uvicorn.Server(_uvicorn_config(app, config, log_level)).run()


class BackgroundServer:
    """``with BackgroundServer(cfg) as url:`` -- a real uvicorn server on a loopback port in a thread."""

    def __init__(self, config: ServeConfig, extractor: Extractor | None = None, startup_timeout_s: float = 30):
        if config.port == 0:
            config = config.model_copy(update={"port": free_port(config.host)})
        self.config = config
        self.app = create_app(config, extractor)
        self.server = uvicorn.Server(_uvicorn_config(self.app, config, "warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="finextract-server")
        self.startup_timeout_s = startup_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=self.config.graceful_shutdown_s + 10)
