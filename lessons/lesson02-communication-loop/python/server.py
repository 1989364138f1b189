"""Lesson 02 server in Python: talk with one caller until it hangs up.

Usage: python3 server.py [ADDR]        (default 127.0.0.1:9002)
"""
import socket
import sys


def parse_addr(text):
    """'127.0.0.1:9002', '[::1]:9002' or 'localhost:9002' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9002' or '[::1]:9002', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


host, port = parse_addr(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9002")
family = socket.AF_INET6 if ":" in host else socket.AF_INET

phone = socket.socket(family, socket.SOCK_STREAM)  # buy a phone
phone.bind((host, port))                           # insert the SIM card
phone.listen(5)                                    # switch it on
print("listening on", show(phone.getsockname()), flush=True)

conn, client_addr = phone.accept()                 # pick up
peer = show(client_addr)
print("client", peer, "connected")
while True:                                        # the communication loop
    try:
        data = conn.recv(1024)                     # whatever has arrived, up to 1024 bytes
    except ConnectionResetError as err:            # the caller's phone crashed
        sys.exit(f"error: reading from client {peer} failed: {err}")
    if not data:                                   # b"": the caller hung up
        print("client", peer, "disconnected")
        break                                      # without it: recv returns b"" for ever
    print("client", peer, "said", repr(data.decode("utf-8", "replace")))
    conn.sendall(data.upper())                     # answer exactly this read
conn.close()                                       # hang up
phone.close()                                      # switch the phone off
