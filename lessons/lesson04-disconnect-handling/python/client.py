"""Lesson 04 client in Python: type lines, q to quit; says so when the server goes away.

Usage: python3 client.py [ADDR]        (default 127.0.0.1:9004)
Type q to ask the server to hang up, or end the input (Ctrl-D; Ctrl-Z Enter on Windows).
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
        if not chunk:                              # b"": the server hung up mid-call
            sys.exit("error: server closed the connection")
        data += chunk
    return data


def talk(phone, message):
    """One message. Returns False once the server has hung up after our q."""
    if message.lower() == b"q":
        phone.sendall(message)
        phone.shutdown(socket.SHUT_WR)             # half-close: we still listen
        rest = b""
        while chunk := phone.recv(1024):           # until the server hangs up
            rest += chunk
        if rest:                                   # ours sends none; show it if one does
            print(rest.decode("utf-8", errors="replace"))
        print("server hung up, as asked")
        return False
    reply = b""
    for start in range(0, len(message), PIECE):
        piece = message[start:start + PIECE]
        phone.sendall(piece)
        reply += recv_exactly(phone, len(piece))   # the reply is as long as the piece
    print(reply.decode("utf-8", errors="replace"))
    return True


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9004")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

try:                                               # buy a phone and dial
    phone = socket.create_connection((host.strip("[]"), int(port)))
except OSError as err:
    sys.exit(f"error: could not connect to {args.addr} (is lesson04-server running? "
             f"start it with: cargo run -p lesson04-server): {err}")

prompt = sys.stdin.isatty()                        # '>> ' only for a person typing
try:
    while True:
        if prompt:
            print(">> ", end="", flush=True)
        line = sys.stdin.buffer.readline()         # bytes, so any input is sent as is
        if not line:                               # end of input: Ctrl-D
            if prompt:
                print()  # end the line the prompt is on
            break
        message = line.strip()
        if message and not talk(phone, message):  # blank lines are skipped, never sent
            break
except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
    sys.exit("error: server reset the connection")
phone.close()                                      # hang up: the server's recv returns b""
