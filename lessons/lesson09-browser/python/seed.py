"""The Python tutorials' first web server, as they write it (lesson 09).

Usage: python3 seed.py [ADDR]        (default 127.0.0.1:9009)
Open the address in a browser, then read lesson 09 for what goes wrong.
"""
import argparse
import socket

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9009")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
phone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
phone.bind((host, int(port)))
phone.listen(5)
print("listening on", "%s:%d" % phone.getsockname(), flush=True)
try:
    while True:
        conn, addr = phone.accept()
        try:
            data = conn.recv(1024)     # one recv: maybe part of the request
            first = repr(data.split(b"\n")[0])
            print("client %s:%d:" % addr, first, f"({len(data)} bytes read)",
                  flush=True)
            # The tutorials write b"HTTP/1.1 200 OK 、\r\n\r\n", which
            # Python 3 refuses (a bytes literal holds ASCII only); encoding
            # the str sends the same bytes.
            conn.send("HTTP/1.1 200 OK 、\r\n\r\n".encode("utf-8"))
            words = "不要回答！！！不要回答！！！不要回答！！！"
            conn.send(f"<h1> {words}</h1>".encode("gb2312"))
        except OSError:
            # The tutorials stop here with a traceback when a browser has
            # already dropped the connection (BrokenPipeError): go on.
            pass
        conn.close()
except KeyboardInterrupt:
    pass                               # Ctrl-C: stop quietly
