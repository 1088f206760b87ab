"""The asyncio server on a real loopback socket: framing over TCP, limits, bad clients, STARTTLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.broker import tls
from bridge.nut.protocol import MAX_LINE
from bridge.nut.server import NutServer, ServedUpses, Ups
from bridge.nut.variables import Identity, Power, UpsState

pytestmark = pytest.mark.realtime

UPS = Ups("ups", "powerbridge rack-a", Identity("rack-a", version="test"))


def served(state: Callable[[str], UpsState] | None = None, *, tls_on: bool = False) -> ServedUpses:
    return ServedUpses(
        [UPS],
        state or (lambda _d: UpsState(stale=False, power=Power.ON_BATTERY)),
        {"monuser": "secret"},
        version="test",
        tls=tls_on,
    )


async def started(server: NutServer) -> int:
    await server.start(["127.0.0.1"], 0)
    return server.ports[0]


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str, *, lines: int = 1
) -> list[str]:
    writer.write(line.encode() + b"\n")
    await writer.drain()
    return [(await asyncio.wait_for(reader.readline(), 5)).decode() for _ in range(lines)]


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_session_over_tcp() -> None:
    async def main() -> None:
        server = NutServer(served())
        port = await started(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await exchange(reader, writer, "GET VAR ups ups.status") == [
            'VAR ups ups.status "OB DISCHRG"\n'
        ]
        assert await exchange(reader, writer, "LIST UPS", lines=3) == [
            "BEGIN LIST UPS\n",
            'UPS ups "powerbridge rack-a"\n',
            "END LIST UPS\n",
        ]
        await exchange(reader, writer, "USERNAME monuser")
        await exchange(reader, writer, "PASSWORD secret")
        assert await exchange(reader, writer, "LOGIN ups") == ["OK\n"]
        assert await exchange(reader, writer, "LIST CLIENT ups", lines=3) == [
            "BEGIN LIST CLIENT ups\n",
            "CLIENT ups 127.0.0.1\n",
            "END LIST CLIENT ups\n",
        ]
        assert await exchange(reader, writer, "LOGOUT") == ["OK Goodbye\n"]
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await server.close()

    run(main())


def test_an_overlong_line_is_refused_and_closed_others_unaffected() -> None:
    async def main() -> None:
        server = NutServer(served())
        port = await started(server)
        good_r, good_w = await asyncio.open_connection("127.0.0.1", port)
        bad_r, bad_w = await asyncio.open_connection("127.0.0.1", port)
        bad_w.write(b"GET VAR ups " + b"x" * (MAX_LINE * 64))
        await bad_w.drain()
        assert await asyncio.wait_for(bad_r.read(), 5) == b"ERR INVALID-ARGUMENT\n"
        assert await exchange(good_r, good_w, "GET VAR ups ups.status") == [
            'VAR ups ups.status "OB DISCHRG"\n'
        ]
        good_w.close()
        bad_w.close()
        await server.close()

    run(main())


def test_binary_garbage_gets_errors_and_the_connection_survives() -> None:
    async def main() -> None:
        server = NutServer(served())
        port = await started(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\xff\xfe\x01garbage\n\x16\x03\x01\x02\x00\x01\x00\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 5) == b"ERR INVALID-ARGUMENT\n"
        assert await asyncio.wait_for(reader.readline(), 5) == b"ERR INVALID-ARGUMENT\n"
        assert await exchange(reader, writer, "NETVER") == ["1.3\n"]
        writer.close()
        await server.close()

    run(main())


def test_connections_beyond_the_limit_are_closed_and_idle_ones_time_out() -> None:
    async def main() -> None:
        server = NutServer(served(), max_connections=50, idle_timeout=1.0)
        port = await started(server)
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(1000)]
        await asyncio.sleep(0.3)
        assert server.connections == 50
        assert server.refused == 950
        # Idle connections are closed after idle_timeout, freeing room for new clients.
        await asyncio.sleep(1.5)
        assert server.connections == 0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await exchange(reader, writer, "NETVER") == ["1.3\n"]
        for _, w in conns:
            w.close()
        writer.close()
        await server.close()

    run(main())


def test_a_client_that_never_reads_is_dropped_with_bounded_output() -> None:
    async def main() -> None:
        server = NutServer(served())
        port = await started(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
        request = b"LIST VAR ups\n" * 2000
        for _ in range(100):
            writer.write(request)
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except (TimeoutError, ConnectionError):
                break
        # Meanwhile another client is served promptly.
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await exchange(r2, w2, "GET VAR ups ups.status") == [
            'VAR ups ups.status "OB DISCHRG"\n'
        ]
        # The slow reader's connection is closed once its pending output stays full.
        await asyncio.sleep(12)
        assert server.connections == 1
        del reader
        writer.close()
        w2.close()
        await server.close()

    run(main())


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    ca = tls.make_ca()
    cert = tls.make_server_cert(ca, ["127.0.0.1", "localhost"])
    paths = (tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key")
    paths[0].write_bytes(ca.cert_pem)
    paths[1].write_bytes(cert.cert_pem)
    paths[2].write_bytes(cert.key_pem)
    return paths


def test_starttls_upgrades_the_connection(certificate: tuple[Path, Path, Path]) -> None:
    ca, crt, key = certificate

    async def main() -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(crt, key)
        server = NutServer(served(tls_on=True), ssl_context=context)
        port = await started(server)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await exchange(reader, writer, "STARTTLS") == ["OK STARTTLS\n"]
        client_context = ssl.create_default_context(cafile=str(ca))
        await writer.start_tls(client_context, server_hostname="127.0.0.1")
        assert await exchange(reader, writer, "GET VAR ups ups.status") == [
            'VAR ups ups.status "OB DISCHRG"\n'
        ]
        writer.close()
        await server.close()

    run(main())
