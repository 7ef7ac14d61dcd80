"""Running the app: in the foreground (CLI) or in a background thread (tests, benchmarks).

Connection-level limits (what each bounds):

* ``header_timeout_s`` -- from the moment a connection opens (or a keep-alive connection sees
  the first byte of its next request) until the request line and all headers are in. uvicorn
  has no such timer (its keep-alive timer stops at the first byte), so a "slowloris" client
  trickling one header byte a second held its connection forever; :class:`TimedH11Protocol`
  closes it.
* ``body_timeout_s`` -- the whole body must arrive within this (the app answers 408).
* ``keep_alive_s`` (uvicorn ``timeout_keep_alive``) -- an idle connection between requests.
* ``max_header_bytes`` (uvicorn ``h11_max_incomplete_event_size``) -- request line + headers
  buffered before h11 refuses the request (400).
* ``max_connections`` (uvicorn ``limit_concurrency``) -- open connections and tasks at once;
  above it uvicorn answers 503 at once instead of queueing without bound.
* ``max_body_bytes`` -- enforced by the app while reading (413).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from finextract.extractor import Extractor
from finextract.serve.app import create_app
from finextract.serve.config import ServeConfig, is_loopback, load_api_key

log = logging.getLogger("finextract.serve")


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving a request's line and headers."""

    header_timeout_s = 10.0  # set per server by _protocol_for()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection that sent no complete request headers within %.1fs",
                     self.header_timeout_s)
            self.transport.close()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        if self._idle():  # the first bytes of a (next) request: its headers are now on the clock
            self._arm_header_timer()
        super().data_received(data)
        if not self._idle():  # headers complete: a request cycle is running
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        self._disarm_header_timer()  # between requests the keep-alive timeout applies
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def _protocol_for(config: ServeConfig) -> type[TimedH11Protocol]:
    return type("TimedH11Protocol", (TimedH11Protocol,), {"header_timeout_s": config.header_timeout_s})


def configure_access_log(enabled: bool) -> None:
    """Access lines are JSON objects: print them bare (no level prefix) on stderr."""
    access = logging.getLogger("finextract.access")
    if enabled and not any(getattr(h, "_finextract", False) for h in access.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._finextract = True  # type: ignore[attr-defined]
        access.addHandler(handler)
        access.propagate = False
    access.setLevel(logging.INFO if enabled else logging.WARNING)


def warn_if_exposed(config: ServeConfig) -> bool:
    """Log a warning (and return True) when bound beyond loopback without an API key."""
    if not is_loopback(config.host) and load_api_key(config) is None:
        log.warning("serving on %s without an API key: anyone who can reach this port can use the model. "
                    "Set --api-key-file or $FINEXTRACT_API_KEY, and put a TLS proxy in front (docs/serving.md)",
                    config.host)
        return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _uvicorn_config(app, config: ServeConfig, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=config.host, port=config.port, log_level=log_level,
                          timeout_graceful_shutdown=config.graceful_shutdown_s, access_log=False,
                          lifespan="on", http=_protocol_for(config), timeout_keep_alive=config.keep_alive_s,
                          h11_max_incomplete_event_size=config.max_header_bytes,
                          limit_concurrency=config.max_connections, server_header=False)


def run_server(config: ServeConfig, extractor: Extractor | None = None, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM; uvicorn then stops accepting, lets in-flight requests finish,
    and the app's shutdown hook drains the batch queue."""
    warn_if_exposed(config)
    configure_access_log(config.access_log)
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
