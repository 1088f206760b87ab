"""uvicorn in a thread of the archive process, on a socket bound before it starts.

Binding first means the port is known (``http.port: 0`` picks a free one, which
tests and the demo use) and a port in use fails the start with a clear message.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import TYPE_CHECKING

import uvicorn

from bridge.archive.records import epoch_ms
from bridge.archive.web.app import create_app
from bridge.errors import PowerbridgeError

if TYPE_CHECKING:
    from bridge.archive.service import ArchiveService, Served

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, service: ArchiveService) -> None:
        self.service = service
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Served:
        from bridge.archive.service import Served

        config = self.service.config
        http = config.http
        family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((http.host, http.port))
        except OSError as exc:
            sock.close()
            raise PowerbridgeError(
                f"the management view cannot listen on {http.host}:{http.port}: {exc.strerror}"
            ) from None
        sock.listen(128)
        port = int(sock.getsockname()[1])
        clock = self.service.clock
        app = create_app(
            self.service.store,
            self.service.ingest.figures,
            lambda: epoch_ms(clock.utcnow()),
            stale_after_s=http.stale_after,
            username=http.username,
            password=config.http_password() if http.username else None,
            backlog=lambda: self.service.ingest.backlog,
        )
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        self._server = server

        def serve() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, name="archive-http", daemon=True)
        self._thread.start()
        return Served(http.host, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
