"""Loopback TCP proxy for simulating network faults between the gateway and a real service.

Point a client at ``127.0.0.1:<proxy.port>`` instead of the service, then call
:meth:`TCPProxy.disconnect` to cut every live connection, or :meth:`TCPProxy.pause`
to keep the service unreachable until :meth:`TCPProxy.resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType
from typing import Self

_CHUNK = 64 * 1024
# SO_LINGER with a zero timeout makes close() send RST, which is what a real
# network cut looks like to both peers (no orderly FIN handshake).
_LINGER_RESET = struct.pack("ii", 1, 0)


def _reset(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    transport = writer.transport
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    transport.abort()


class _Pair:
    """One proxied client connection and its upstream counterpart."""

    __slots__ = ("client", "task", "upstream")

    def __init__(self, client: asyncio.StreamWriter, task: asyncio.Task[None] | None) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task = task

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)


class TCPProxy:
    """Forward connections from an ephemeral loopback port to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self.connections_accepted = 0
        self.connections_refused = 0
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self._paused = False

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TCPProxy.start() has not been awaited")
        return self._port

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def active_connections(self) -> int:
        return len(self._pairs)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("TCPProxy already started")
        self._server = await asyncio.start_server(self._handle, self.listen_host, 0)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def disconnect(self) -> None:
        """Cut every live connection pair; the proxy keeps listening."""
        pairs = list(self._pairs)
        for pair in pairs:
            pair.reset()
            if pair.task is not None:
                pair.task.cancel()
        tasks = [pair.task for pair in pairs if pair.task is not None]
        # Waiting for the handlers means that, on return, no byte can still cross the proxy.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def pause(self) -> None:
        """Cut live connections and drop new ones until :meth:`resume`."""
        self._paused = True
        await self.disconnect()

    async def resume(self) -> None:
        self._paused = False

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await self.disconnect()
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._paused or self._server is None:
            self.connections_refused += 1
            _reset(writer)
            return
        self.connections_accepted += 1
        pair = _Pair(writer, asyncio.current_task())
        self._pairs.add(pair)
        graceful = False
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                return
            pair.upstream = up_writer
            results = await asyncio.gather(
                self._pump(reader, up_writer),
                self._pump(up_reader, writer),
                return_exceptions=True,
            )
            graceful = all(result is True for result in results)
        finally:
            self._pairs.discard(pair)
            if graceful:
                # Both sides already sent EOF: close normally so buffered bytes still flush.
                writer.close()
                if pair.upstream is not None:
                    pair.upstream.close()
            else:
                pair.reset()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Copy one direction until EOF; return False if the connection broke."""
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
            # Propagate half-close so protocols that rely on EOF keep working through the proxy.
            if writer.can_write_eof() and not writer.transport.is_closing():
                writer.write_eof()
        except OSError:
            _reset(writer)
            return False
        return True
