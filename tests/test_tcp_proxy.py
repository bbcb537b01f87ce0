from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.support.tcp_proxy import TCPProxy

TIMEOUT = 2.0


@dataclass
class EchoServer:
    port: int
    connections: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    writers: set[asyncio.StreamWriter] = set()
    state = EchoServer(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        writers.add(writer)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writers.discard(writer)
            writer.close()
            state.closed.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    yield state
    server.close()
    for writer in list(writers):
        writer.transport.abort()
    await server.wait_closed()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[TCPProxy]:
    async with TCPProxy("127.0.0.1", echo.port) as p:
        yield p


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), TIMEOUT)


async def is_broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """True once the peer has closed or reset; never blocks longer than TIMEOUT."""
    try:
        writer.write(b"ping")
        await writer.drain()
        return await asyncio.wait_for(reader.read(4), TIMEOUT) == b""
    except OSError:
        return True


async def test_data_flows_both_ways(proxy: TCPProxy, echo: EchoServer) -> None:
    async with connect(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"hello") == b"hello"
        # Larger than socket buffers, so backpressure in both directions is exercised.
        big = bytes(range(256)) * 4096
        assert await roundtrip(reader, writer, big) == big
        # Half-close travels through: the echo server sees EOF, closes, and we see EOF back.
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert proxy.connections_accepted == 1
    assert echo.connections == 1


async def test_disconnect_breaks_open_connection_but_keeps_listening(
    proxy: TCPProxy, echo: EchoServer
) -> None:
    async with connect(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"before") == b"before"
        assert proxy.active_connections == 1

        await proxy.disconnect()

        assert proxy.active_connections == 0
        assert await is_broken(reader, writer)
        await asyncio.wait_for(echo.closed.wait(), TIMEOUT)

    async with connect(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"after") == b"after"
    assert proxy.connections_accepted == 2
    assert echo.connections == 2


async def test_pause_drops_connections_until_resume(proxy: TCPProxy, echo: EchoServer) -> None:
    async with connect(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"up") == b"up"
        await proxy.pause()
        assert proxy.paused
        assert await is_broken(reader, writer)

    async with connect(proxy.port) as (reader, writer):
        assert await is_broken(reader, writer)
    assert proxy.connections_refused == 1
    assert echo.connections == 1

    await proxy.resume()
    async with connect(proxy.port) as (reader, writer):
        assert await roundtrip(reader, writer, b"back") == b"back"
    assert proxy.connections_accepted == 2
    assert echo.connections == 2


async def test_unreachable_target_closes_client() -> None:
    # A bound but non-listening socket reserves a port that refuses connections.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        async with TCPProxy("127.0.0.1", reserved.getsockname()[1]) as proxy:
            async with connect(proxy.port) as (reader, writer):
                assert await is_broken(reader, writer)
            assert proxy.active_connections == 0


async def test_close_stops_listening(echo: EchoServer) -> None:
    proxy = TCPProxy("127.0.0.1", echo.port)
    with pytest.raises(RuntimeError):
        _ = proxy.port
    await proxy.start()
    port = proxy.port
    async with connect(port) as (reader, writer):
        assert await roundtrip(reader, writer, b"x") == b"x"
        await proxy.close()
        assert await is_broken(reader, writer)
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    await proxy.close()
