"""The naive upload: the file's name, a newline, its bytes, then close.

Usage: python3 naive_client.py PATH [ADDR]     (default 127.0.0.1:9008)
"""
import os
import socket
import sys

path = sys.argv[1]
addr = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:9008"
host, _, port = addr.rpartition(":")
phone = socket.create_connection((host, int(port)))
with open(path, "rb") as f:
    phone.sendall(os.path.basename(path).encode() + b"\n" + f.read())
phone.close()                          # the only way to say "the end"
