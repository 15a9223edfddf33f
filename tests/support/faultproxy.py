"""A loopback HTTP/1.1 proxy that injects faults into blob transfers.

Put it in front of a plain-HTTP registry and point the client at `proxy.url`: requests
pass through unchanged (the Host header is kept, so the registry's upload Locations point
back at the proxy), except that requests whose path contains `/blobs/` may get

- an HTTP error (500 or 503) instead of being forwarded ("error_500", "error_503");
- a connection reset (RST) part-way through: in the request body for uploads with a
  body, in the response body for downloads, or after the server answered but before the
  client sees the answer when neither has a body ("reset").

Decisions come from `random.Random(seed)`, drawn once per candidate request, so a given
request sequence sees the same faults every run; `plan` forces the first decisions
exactly. Counters (`faults`, `events`) let tests assert that faults really happened.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_HEAD_LIMIT = 64 * 1024
_TLS_HANDSHAKE_RECORD = 0x16
_NOT_TLS_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_COPY_CHUNK = 64 * 1024

PASS = "pass"
RESET = "reset"


class _ConnectionGone(Exception):
    """The client or upstream side closed; end this connection quietly."""


@dataclass(frozen=True)
class FaultEvent:
    method: str
    path: str
    kind: str  # "reset", "error_500", "error_503"
    bytes_before_cut: int | None = None  # body bytes passed on before a reset


@dataclass
class _Message:
    """A parsed request or response head, with its raw bytes."""

    start_line: str
    headers: list[tuple[str, str]]
    raw: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def has_token(self, name: str, token: str) -> bool:
        value = self.header(name) or ""
        return token in (part.strip().lower() for part in value.split(","))

    @property
    def is_chunked(self) -> bool:
        return self.has_token("transfer-encoding", "chunked")

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None else None


class FaultProxy:
    """Proxy from 127.0.0.1:<port> to a loopback upstream, injecting faults on blob requests.

    error_rate, reset_rate: probability per candidate request (both together at most 1).
    plan: explicit decisions for the first candidate requests, e.g. ["reset", 503, "pass"];
        after it runs out, the rates apply.
    max_faults: stop injecting after this many faults (None: no limit).
    path_contains / methods: which requests are candidates.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        seed: int = 0,
        error_rate: float = 0.0,
        reset_rate: float = 0.0,
        error_statuses: Iterable[int] = (500, 503),
        plan: Iterable[str | int] = (),
        max_faults: int | None = None,
        path_contains: str = "/blobs/",
        methods: Iterable[str] | None = None,
    ) -> None:
        if not ipaddress.ip_address(socket.gethostbyname(upstream_host)).is_loopback:
            raise ValueError("the fault proxy only forwards to loopback addresses")
        self.upstream = (upstream_host, upstream_port)
        self.seed = seed
        self.error_statuses = tuple(error_statuses)
        self.path_contains = path_contains
        self.methods = {m.upper() for m in methods} if methods else None
        self._lock = threading.Lock()
        self._configure(error_rate, reset_rate, plan, max_faults)
        self.faults: Counter[str] = Counter()
        self.events: list[FaultEvent] = []
        self.requests_seen = 0
        self.candidates_seen = 0
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- configuration --------------------------------------------------------------------------
    def _configure(
        self,
        error_rate: float,
        reset_rate: float,
        plan: Iterable[str | int],
        max_faults: int | None,
    ) -> None:
        if error_rate < 0 or reset_rate < 0 or error_rate + reset_rate > 1:
            raise ValueError("error_rate and reset_rate must be >= 0 and add up to at most 1")
        self.error_rate = error_rate
        self.reset_rate = reset_rate
        self.max_faults = max_faults
        self._faults_decided = 0  # counted at decision time, so concurrency cannot overshoot
        self._plan = [_normalise_decision(d) for d in plan]
        self._rng = random.Random(self.seed)

    def set_faults(
        self,
        *,
        error_rate: float = 0.0,
        reset_rate: float = 0.0,
        plan: Iterable[str | int] = (),
        max_faults: int | None = None,
        seed: int | None = None,
    ) -> None:
        """Change the fault settings (and reseed) while running; counters are kept."""
        with self._lock:
            if seed is not None:
                self.seed = seed
            self._configure(error_rate, reset_rate, plan, max_faults)

    def disable(self) -> None:
        self.set_faults()

    def reset_counters(self) -> None:
        with self._lock:
            self.faults.clear()
            self.events.clear()
            self.requests_seen = 0
            self.candidates_seen = 0

    @property
    def total_faults(self) -> int:
        with self._lock:
            return sum(self.faults.values())

    def _decide(self, method: str, path: str) -> str:
        """PASS, RESET or "error_<status>" for one request; draws from the seeded RNG."""
        with self._lock:
            self.requests_seen += 1
            if self.path_contains not in path:
                return PASS
            if self.methods is not None and method not in self.methods:
                return PASS
            self.candidates_seen += 1
            if self._plan:
                decision = self._plan.pop(0)
            else:
                draw = self._rng.random()
                if draw < self.error_rate:
                    decision = f"error_{self._rng.choice(self.error_statuses)}"
                elif draw < self.error_rate + self.reset_rate:
                    decision = RESET
                else:
                    decision = PASS
            if decision != PASS:
                if self.max_faults is not None and self._faults_decided >= self.max_faults:
                    decision = PASS
                else:
                    self._faults_decided += 1
            return decision

    def _cut_point(self, length: int | None) -> int:
        """How many body bytes to pass on before a reset: always fewer than `length`."""
        with self._lock:
            if not length:
                return 0
            return self._rng.randrange(0, length)

    def _record(self, event: FaultEvent) -> None:
        with self._lock:
            self.faults[event.kind] += 1
            self.events.append(event)

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("fault proxy is not running")
        return self._listener.getsockname()[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="fault-proxy-accept", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown_quietly(connection)  # wakes the thread blocked reading it
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by stop()
            threading.Thread(
                target=self._serve_connection, args=(client,), name="fault-proxy-conn", daemon=True
            ).start()

    # -- one client connection ----------------------------------------------------------------------
    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(sock)

    def _serve_connection(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        self._track(client, True)
        _no_delay(client)
        try:
            client_reader = _SocketReader(client)
            upstream_reader: _SocketReader | None = None
            while True:
                if client_reader.peek_byte() == _TLS_HANDSHAKE_RECORD:
                    # A client probing for HTTPS: answer at once, as Go's HTTP server does.
                    client.sendall(_NOT_TLS_ANSWER)
                    return
                request = _read_head(client_reader)
                if request is None:
                    return  # client closed between requests
                method, path = _request_target(request)
                decision = self._decide(method, path)
                if decision.startswith("error_"):
                    _drain_body(client_reader, request)
                    _send_error(client, int(decision.removeprefix("error_")), method == "HEAD")
                    self._record(FaultEvent(method, path, decision))
                    continue
                if upstream is None or _peer_closed(upstream):
                    if upstream is not None:
                        self._track(upstream, False)
                        _close_quietly(upstream)
                    upstream = socket.create_connection(self.upstream, timeout=60)
                    _no_delay(upstream)
                    self._track(upstream, True)
                    upstream_reader = _SocketReader(upstream)
                assert upstream_reader is not None
                keep_open = self._forward(
                    client,
                    client_reader,
                    upstream,
                    upstream_reader,
                    request,
                    method,
                    path,
                    decision,
                )
                if not keep_open:
                    return
        except (_ConnectionGone, OSError, ValueError):
            return
        finally:
            self._track(client, False)
            _close_quietly(client)
            if upstream is not None:
                self._track(upstream, False)
                _close_quietly(upstream)

    def _forward(
        self,
        client: socket.socket,
        client_reader: _SocketReader,
        upstream: socket.socket,
        upstream_reader: _SocketReader,
        request: _Message,
        method: str,
        path: str,
        decision: str,
    ) -> bool:
        """Pass one request and its response through; False when the connection must end."""
        request_raw = request.raw
        if request.has_token("expect", "100-continue"):
            # Answer the client ourselves so it does not wait; the registry never sees Expect.
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            request_raw = _without_header(request, "expect")
        upstream.sendall(request_raw)

        request_body_length = _declared_body_length(request, is_request=True)
        cuts_request = decision == RESET and (request_body_length != 0 or request.is_chunked)
        limit = self._cut_point(request_body_length) if cuts_request else None
        sent = _copy_body(client_reader, upstream, request, is_request=True, limit=limit)
        if cuts_request:
            self._record(FaultEvent(method, path, RESET, sent))
            _reset(client)
            _reset(upstream)
            raise _ConnectionGone

        response = _read_head(upstream_reader)
        while response is not None and _status(response) in range(100, 200):
            client.sendall(response.raw)  # interim responses, passed on as they are
            response = _read_head(upstream_reader)
        if response is None:
            raise _ConnectionGone

        no_body = method == "HEAD" or _status(response) in (204, 304)
        if decision == RESET and (no_body or response.content_length == 0):
            # The server acted on the request, but the client never learns the outcome.
            self._record(FaultEvent(method, path, RESET, 0))
            _reset(client)
            raise _ConnectionGone

        client.sendall(response.raw)
        if no_body:
            return not response.has_token("connection", "close")
        limit = None
        if decision == RESET:
            limit = self._cut_point(response.content_length)
        sent = _copy_body(upstream_reader, client, response, is_request=False, limit=limit)
        if decision == RESET:
            self._record(FaultEvent(method, path, RESET, sent))
            _reset(client)
            raise _ConnectionGone
        if response.content_length is None and not response.is_chunked:
            return False  # body ended by close
        return not (
            response.has_token("connection", "close") or request.has_token("connection", "close")
        )


class _SocketReader:
    """Buffered reads from a socket (no makefile(), so close() really closes the socket)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def _fill(self) -> bool:
        data = self._sock.recv(_COPY_CHUNK)
        if not data:
            return False
        self._buffer += data
        return True

    def readline(self, limit: int) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 or len(self._buffer) >= limit:
                cut = end + 1 if end >= 0 else limit
                cut = min(cut, limit)
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                return line
            if not self._fill():
                line = bytes(self._buffer)
                self._buffer.clear()
                return line

    def peek_byte(self) -> int | None:
        """The next byte without consuming it; None at end of stream."""
        if not self._buffer and not self._fill():
            return None
        return self._buffer[0]

    def read1(self, size: int) -> bytes:
        """Up to `size` bytes: what is buffered, or one recv; b"" at end of stream."""
        if not self._buffer and not self._fill():
            return b""
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


# -- HTTP/1.1 framing ---------------------------------------------------------------------------
def _read_head(reader: _SocketReader) -> _Message | None:
    """Read a start line and headers; None if the peer closed before sending anything."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = reader.readline(_HEAD_LIMIT + 1)
        if not line:
            if lines:
                raise _ConnectionGone
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue  # tolerate stray CRLF between messages
        lines.append(line)
        size += len(line)
        if size > _HEAD_LIMIT:
            raise ValueError("HTTP head too large")
        if line in (b"\r\n", b"\n"):
            break
    text = [line.decode("latin-1").rstrip("\r\n") for line in lines[:-1]]
    headers = []
    for header_line in text[1:]:
        name, _, value = header_line.partition(":")
        headers.append((name.strip(), value.strip()))
    return _Message(start_line=text[0], headers=headers, raw=b"".join(lines))


def _request_target(request: _Message) -> tuple[str, str]:
    parts = request.start_line.split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line {request.start_line!r}")
    return parts[0].upper(), parts[1]


def _status(response: _Message) -> int:
    return int(response.start_line.split(" ")[1])


def _declared_body_length(message: _Message, is_request: bool) -> int | None:
    """Content-Length; 0 for requests without framing headers; None if chunked/unknown."""
    if message.is_chunked:
        return None
    length = message.content_length
    if length is None and is_request:
        return 0
    return length


def _copy_body(
    source: _SocketReader,
    sink: socket.socket,
    message: _Message,
    *,
    is_request: bool,
    limit: int | None,
) -> int:
    """Copy a message body as it is framed; stop after `limit` bytes if given.

    Returns the number of body bytes (framing included for chunked bodies) passed on.
    """
    if message.is_chunked:
        return _copy_chunked(source, sink, limit)
    length = _declared_body_length(message, is_request)
    return _copy_exact(source, sink, length, limit)


def _copy_exact(
    source: _SocketReader, sink: socket.socket, length: int | None, limit: int | None
) -> int:
    """Copy `length` bytes (None: until the source closes), cut at `limit`."""
    copied = 0
    while length is None or copied < length:
        want = _COPY_CHUNK if length is None else min(_COPY_CHUNK, length - copied)
        if limit is not None:
            want = min(want, limit - copied)
            if want <= 0:
                break
        data = source.read1(want)
        if not data:
            if length is None:
                break
            raise _ConnectionGone
        sink.sendall(data)
        copied += len(data)
    return copied


def _copy_chunked(source: _SocketReader, sink: socket.socket, limit: int | None) -> int:
    copied = 0

    def pass_on(data: bytes) -> bool:
        """Send data, or only what fits under the limit; False once the limit is reached."""
        nonlocal copied
        if limit is not None and copied + len(data) >= limit:
            sink.sendall(data[: limit - copied])
            copied = limit
            return False
        sink.sendall(data)
        copied += len(data)
        return True

    while True:
        size_line = source.readline(_HEAD_LIMIT)
        if not size_line:
            raise _ConnectionGone
        if not pass_on(size_line):
            return copied
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = source.readline(_HEAD_LIMIT)
                if not trailer:
                    raise _ConnectionGone
                if not pass_on(trailer):
                    return copied
                if trailer in (b"\r\n", b"\n"):
                    return copied
        remaining = size + 2  # chunk data and its CRLF
        while remaining:
            data = source.read1(min(_COPY_CHUNK, remaining))
            if not data:
                raise _ConnectionGone
            remaining -= len(data)
            if not pass_on(data):
                return copied


def _drain_body(reader: _SocketReader, request: _Message) -> None:
    class _Discard:
        def sendall(self, data: bytes) -> None:
            pass

    _copy_body(reader, _Discard(), request, is_request=True, limit=None)  # type: ignore[arg-type]


def _without_header(message: _Message, name: str) -> bytes:
    lines = [message.start_line] + [
        f"{key}: {value}" for key, value in message.headers if key.lower() != name
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _send_error(client: socket.socket, status: int, head_only: bool = False) -> None:
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
    body = json.dumps(
        {"errors": [{"code": "UNAVAILABLE", "message": "injected fault", "detail": status}]}
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Docker-Distribution-Api-Version: registry/2.0\r\n"
        "\r\n"
    ).encode()
    # A response to HEAD has headers only: a body would be read as the next response.
    client.sendall(head if head_only else head + body)


def _normalise_decision(decision: str | int) -> str:
    if isinstance(decision, int):
        return f"error_{decision}"
    if decision in (PASS, RESET) or decision.startswith("error_"):
        return decision
    if decision.isdigit():
        return f"error_{decision}"
    raise ValueError(f"unknown fault decision {decision!r}")


def _peer_closed(sock: socket.socket) -> bool:
    """True if the upstream closed an idle keep-alive connection."""
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        finally:
            sock.settimeout(timeout)
    except BlockingIOError:
        return False
    except OSError:
        return True


def _no_delay(sock: socket.socket) -> None:
    """Heads and bodies go out in separate writes; Nagle would hold the second one back."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN, as a dropped connection looks to the peer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close_quietly(sock)


def _shutdown_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
