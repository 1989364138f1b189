"""Lesson 07, exercise 1: a client written the courses' way.

It sends one message as a JSON header (报头) with its length in front, then
the body, and reads the answer the same way: 4 bytes of length, the answer
header, then as many bytes of body as the header says.

Usage: python3 header_client.py [PORT] [SIZE]
       (default 9007; SIZE is what the header announces, the body's own
       length unless you give one)
"""
import json
import socket
import struct
import sys

MAX_HEADER = 8 * 1024          # the answer headers we accept
MAX_BODY = 1024 * 1024         # and the bodies


def recv_exactly(conn, n):
    """recv until n bytes have come, at most 64 KiB at a time: recv(n) with
    a huge n would make a buffer of that size before any byte arrives."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(min(n - len(data), 65536))
        if not chunk:
            sys.exit("error: the server hung up")
        data += chunk
    return data


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9007
body = "hello, 你好".encode()
size = int(sys.argv[2]) if len(sys.argv) > 2 else len(body)
s = socket.create_connection(("127.0.0.1", port))
header = json.dumps({"name": "notes.txt", "size": size}).encode()
s.sendall(struct.pack("!I", len(header)) + header + body)

(n,) = struct.unpack("!I", recv_exactly(s, 4))
if n > MAX_HEADER:
    sys.exit(f"error: an answer header of {n} bytes is over our limit")
raw = recv_exactly(s, n)
print(raw.decode("utf-8", "replace"))
answer = json.loads(raw) if raw.startswith(b"{") else {}
if answer.get("ok") is True:
    size = answer.get("size")
    if not isinstance(size, int) or not 0 <= size <= MAX_BODY:
        sys.exit(f"error: the answer announces a body of {size!r} bytes")
    print(recv_exactly(s, size).decode("utf-8", "replace"))
