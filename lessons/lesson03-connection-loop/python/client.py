"""Lesson 03 client in Python: lesson 02's client, pointed at lesson 03's server.

Usage: python3 client.py [ADDR]        (default 127.0.0.1:9003)
End the input (Ctrl-D, or Ctrl-Z Enter on Windows) to hang up.
"""
import argparse
import socket
import sys

PIECE = 64 * 1024  # send this much, read its reply, then send the next piece


def recv_exactly(conn, size):
    """Python has no read_exact: call recv until `size` bytes have come."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:                              # b"": hung up before replying
            sys.exit("error: the server closed the connection before it replied")
        data += chunk
    return data


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9003")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

try:                                               # buy a phone and dial
    phone = socket.create_connection((host.strip("[]"), int(port)))
except OSError as err:
    sys.exit(f"error: could not connect to {args.addr} (is lesson03-server running? "
             f"start it with: cargo run -p lesson03-server): {err}")

prompt = sys.stdin.isatty()                        # '>> ' only for a person typing
while True:
    if prompt:
        print(">> ", end="", flush=True)
    line = sys.stdin.buffer.readline()             # bytes, so any input is sent as is
    if not line:                                   # end of input: Ctrl-D
        if prompt:
            print()  # end the line the prompt is on
        break
    message = line.strip()
    if not message:                                # never send zero bytes: skip blank lines
        continue
    reply = b""
    for start in range(0, len(message), PIECE):
        piece = message[start:start + PIECE]
        phone.sendall(piece)
        reply += recv_exactly(phone, len(piece))   # the reply is as long as the piece
    print(reply.decode("utf-8", errors="replace"))
phone.close()                                      # hang up: the server's recv returns b""
