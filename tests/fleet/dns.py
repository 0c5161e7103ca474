"""A tiny authoritative DNS server on loopback, the fleet's service discovery.

HAProxy finds the instances as it does in compose and Kubernetes: one name (``web-bff``)
resolving to every instance's address, refreshed by its ``resolvers`` section. In the tests
the instances are 127.0.0.2, 127.0.0.3, ... on one port, and this server answers A queries for
their names (anything else: NXDOMAIN). RFC 1035 wire format, UDP, one thread.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Mapping, Sequence

_TYPE_A = 1
_CLASS_IN = 1
_TTL_S = 1


class LoopbackDNS:
    """Answers ``name -> [IPv4 addresses]`` on 127.0.0.1:<free port> until closed."""

    def __init__(self, records: Mapping[str, Sequence[str]]) -> None:
        self._records = {name.lower().rstrip("."): list(ips) for name, ips in records.items()}
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.queries = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-dns", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self._socket.close()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                query, client = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self._answer(query)
            if answer is not None:
                self.queries += 1
                self._socket.sendto(answer, client)

    def _answer(self, query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        ident, flags, questions = struct.unpack("!HHH", query[:6])
        if flags & 0x8000 or questions != 1:  # a response, or not one question: ignore
            return None
        labels: list[str] = []
        offset = 12
        while offset < len(query) and query[offset] != 0:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
            offset += 1 + length
        question_end = offset + 5  # the root label, then QTYPE and QCLASS
        if question_end > len(query):
            return None
        qtype, qclass = struct.unpack("!HH", query[offset + 1 : question_end])
        question = query[12:question_end]
        ips = self._records.get(".".join(labels).lower())
        recursion_desired = flags & 0x0100
        if ips is None:
            header = struct.pack("!HHHHHH", ident, 0x8400 | recursion_desired | 3, 1, 0, 0, 0)
            return header + question
        answers = [] if (qtype, qclass) != (_TYPE_A, _CLASS_IN) else ips
        header = struct.pack("!HHHHHH", ident, 0x8400 | recursion_desired, 1, len(answers), 0, 0)
        records = b"".join(
            # A pointer to the name in the question (offset 12), then the A record.
            struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, _TTL_S, 4) + socket.inet_aton(ip)
            for ip in answers
        )
        return header + question + records
