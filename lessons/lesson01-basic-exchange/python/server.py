"""Lesson 01 server in Python: take one call, answer one message, hang up.

Usage: python3 server.py [ADDR]        (default 127.0.0.1:9001)
"""
import socket
import sys


def parse_addr(text):
    """'127.0.0.1:9001', '[::1]:9001' or 'localhost:9001' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9001' or '[::1]:9001', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


host, port = parse_addr(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9001")
family = socket.AF_INET6 if ":" in host else socket.AF_INET

phone = socket.socket(family, socket.SOCK_STREAM)  # buy a phone
phone.bind((host, port))                           # insert the SIM card
phone.listen(5)                                    # switch it on
print("listening on", show(phone.getsockname()), flush=True)

conn, client_addr = phone.accept()                 # pick up
print("client", show(client_addr), "connected")
data = conn.recv(1024)                             # listen: at most 1024 bytes
if data:
    print("client", show(client_addr), "said", repr(data.decode("utf-8", "replace")))
    conn.sendall(data.upper())                     # talk: bytes.upper() leaves non-ASCII alone
else:
    print("client", show(client_addr), "hung up without saying anything")
conn.close()                                       # hang up
print("hung up on client", show(client_addr))
phone.close()                                      # switch the phone off
