"""The NUT network server (asyncio): connections, limits, and the :class:`Directory` it serves.

Bad input cannot hurt other clients or memory: a line is read with a fixed limit
(:data:`~bridge.nut.protocol.MAX_LINE`; a longer one is answered ``ERR
INVALID-ARGUMENT`` and the connection closed), connections beyond
``max_connections`` are closed at once, one that stays silent for ``idle_timeout`` is
closed, and a client that does not read its replies is closed once its unsent
output passes :data:`MAX_PENDING_OUTPUT` (the reply waits at most
:data:`DRAIN_TIMEOUT`).  Each connection is one task; none can block another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bridge.nut.protocol import (
    MAX_LINE,
    Action,
    NutError,
    Session,
    Variable,
    error_line,
)
from bridge.nut.variables import Identity, UpsState, variables

log = logging.getLogger("bridge.nut.server")

MAX_PENDING_OUTPUT: Final = 64 * 1024
DRAIN_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class Ups:
    """One served UPS: its name, description and identity, and where its state comes from."""

    name: str
    description: str
    identity: Identity


class ServedUpses:
    """The :class:`~bridge.nut.protocol.Directory` over a state source and the live sessions."""

    def __init__(
        self,
        upses: Sequence[Ups],
        state_of: Callable[[str], UpsState],
        users: Mapping[str, str],
        *,
        version: str,
        tls: bool = False,
    ) -> None:
        self._upses = {u.name: u for u in upses}
        self._state_of = state_of
        self._users = dict(users)
        self._version = version
        self._tls = tls
        self.sessions: set[Session] = set()

    def ups_names(self) -> Sequence[str]:
        return list(self._upses)

    def description(self, ups: str) -> str:
        return self._upses[ups].description

    def variables(self, ups: str) -> Mapping[str, Variable] | None:
        served = self._upses[ups]
        return variables(self._state_of(served.identity.device_id), served.identity)

    def clients(self, ups: str) -> Sequence[str]:
        return sorted(s.peer for s in self.sessions if s.logged_in == ups)

    def check_password(self, username: str, password: str) -> bool:
        expected = self._users.get(username)
        return expected is not None and hmac.compare_digest(expected.encode(), password.encode())

    @property
    def tls_available(self) -> bool:
        return self._tls

    @property
    def version(self) -> str:
        return f"Network UPS Tools upsd compatible - powerbridge {self._version}"


class NutServer:
    """Serves a :class:`ServedUpses` on TCP; :meth:`start` then :meth:`close`."""

    def __init__(
        self,
        directory: ServedUpses,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 256,
        idle_timeout: float = 300.0,
    ) -> None:
        self.directory = directory
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._idle_timeout = idle_timeout
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        self.refused = 0

    @property
    def ports(self) -> list[int]:
        return [int(sock.getsockname()[1]) for server in self._servers for sock in server.sockets]

    async def start(self, hosts: Sequence[str], port: int) -> None:
        for host in hosts:
            server = await asyncio.start_server(
                self._connection, host, port, limit=MAX_LINE, reuse_address=True
            )
            self._servers.append(server)
            log.info("NUT server listening on %s:%d", host, self.ports[-1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.connections >= self._max_connections:
            self.refused += 1
            writer.close()
            return
        self.connections += 1
        if task is not None:
            self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else "unknown"
        session = Session(peer)
        self.directory.sessions.add(session)
        writer.transport.set_write_buffer_limits(high=MAX_PENDING_OUTPUT)
        try:
            await self._serve(session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        finally:
            self.directory.sessions.discard(session)
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _send(self, writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(text.encode("ascii", "replace"))
        if writer.transport.get_write_buffer_size() > MAX_PENDING_OUTPUT:
            # A client that does not read its replies: wait a little, then give up on it.
            await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT)

    async def _serve(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\n"), self._idle_timeout)
            except asyncio.LimitOverrunError:
                await self._send(writer, error_line(NutError.INVALID_ARGUMENT))
                return
            except asyncio.IncompleteReadError:
                return
            reply = session.handle_line(raw[:-1], self.directory)
            if reply.action is Action.STARTTLS and self._ssl is not None:
                # Stop reading *before* saying OK: the client's TLS hello, sent the moment it
                # reads the OK, must reach the TLS layer, not the plain-text line reader.
                if isinstance(writer.transport, asyncio.ReadTransport):
                    writer.transport.pause_reading()
                writer.write(reply.text.encode("ascii"))
                await writer.drain()
                await asyncio.wait_for(writer.start_tls(self._ssl), DRAIN_TIMEOUT)
                continue
            if reply.text:
                await self._send(writer, reply.text)
            if reply.action is Action.CLOSE:
                await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT)
                return
