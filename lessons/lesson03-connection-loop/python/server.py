"""Lesson 03 server in Python: serve callers one after another, for ever.

Usage: python3 server.py [ADDR]        (default 127.0.0.1:9003; stop it with Ctrl-C)
"""
import socket
import sys


def parse_addr(text):
    """'127.0.0.1:9003', '[::1]:9003' or 'localhost:9003' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9003' or '[::1]:9003', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(conn, peer):
    """Lesson 02's communication loop; an error goes up to the caller."""
    while True:
        data = conn.recv(1024)
        if not data:                               # b"": the caller hung up
            return
        print("client", peer, "said", repr(data.decode("utf-8", "replace")))
        conn.sendall(data.upper())


host, port = parse_addr(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9003")
family = socket.AF_INET6 if ":" in host else socket.AF_INET

phone = socket.socket(family, socket.SOCK_STREAM)  # buy a phone
if sys.platform != "win32":                        # as the Rust server: Unix only
    # Take the port back at once after a restart, despite TIME_WAIT.
    phone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
phone.bind((host, port))                           # insert the SIM card
phone.listen(5)                                    # switch it on: up to 5 callers wait in line
print("listening on", show(phone.getsockname()), flush=True)

while True:                                        # the connection loop: one turn per caller
    try:
        conn, client_addr = phone.accept()         # pick up the next caller
    except OSError as err:
        print(f"accept failed: {err}; waiting for the next client")
        continue
    peer = show(client_addr)
    print("client", peer, "connected")
    try:
        serve(conn, peer)
        print("client", peer, "disconnected")
    except OSError as err:                         # a reset, say: log it, take the next one
        print("client", peer, "disconnected with an error:", err)
    finally:
        conn.close()                               # hang up on this caller
