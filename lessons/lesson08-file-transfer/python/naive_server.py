"""The naive file server, as a first try looks: read until the client
closes, then save what came under the name it sent. Do not use it.

Usage: python3 naive_server.py [ADDR]          (default 127.0.0.1:9008)
"""
import socket
import sys

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9008"
host, _, port = addr.rpartition(":")
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port)))
server.listen(5)
print("listening on %s:%d" % server.getsockname(), flush=True)
while True:
    conn, client = server.accept()
    data = b""
    while True:
        chunk = conn.recv(1024)
        if not chunk:                  # the client closed: "that was the file"
            break
        data += chunk                  # all of it in memory
    name, _, body = data.partition(b"\n")
    with open(name.decode(), "wb") as f:   # whatever name the client sent
        f.write(body)
    print("saved", name.decode(), len(body), "bytes", flush=True)
    conn.close()
