"""Lesson 09 server in Python: answer browsers properly, a thread per caller.

Usage: python3 server.py [ADDR] [--dir DIR] [--idle-timeout SECS]
                        [--max-clients N]
       (default 127.0.0.1:9009, no folder, 10 s, 100 clients)
"""
import argparse
import os
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

MAX_HEAD = 8 * 1024
WORDS = "<h1> 不要回答！！！不要回答！！！不要回答！！！</h1>"
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 431: "Request Header Fields Too Large",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}
TYPES = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
         ".txt": "text/plain; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".json": "application/json",
         ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".svg": "image/svg+xml", ".ico": "image/x-icon"}


def log(line):
    """One log line in one write, so that two threads never mix theirs."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def show(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def page(charset):
    return (f'<!DOCTYPE html>\n<html><head><meta charset="{charset}">'
            f"<title>不要回答</title></head>\n<body>{WORDS}</body></html>\n")


def error(status):
    reason = REASONS[status]
    body = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{status} {reason}'
            f"</title></head>\n<body><h1>{status} {reason}</h1></body></html>\n")
    return status, [("Content-Type", "text/html; charset=utf-8")], body.encode()


def serve_file(target):
    path = urllib.parse.unquote(target.split("?")[0].split("#")[0], errors="strict")
    parts = path[1:].split("/")
    if not all(p and p not in (".", "..") and "\\" not in p and "\0" not in p for p in parts):
        return error(404)
    real = os.path.realpath(os.path.join(args.dir, *parts))   # follows links
    if os.path.commonpath([real, args.dir]) != args.dir:
        return error(403)
    try:
        with open(real, "rb") as f:
            body = f.read()
    except OSError:
        return error(404)
    kind = TYPES.get(os.path.splitext(real)[1].lower(), "application/octet-stream")
    return 200, [("Content-Type", kind)], body


def route(target):
    target = target.split("?")[0].split("#")[0]    # the query is not the path
    if target == "/":
        return 200, [("Content-Type", "text/html; charset=utf-8")], page("utf-8").encode()
    if target == "/gb2312":
        return 200, [("Content-Type", "text/html; charset=gb2312")], page("gb2312").encode("gb2312")
    return serve_file(target) if args.dir else error(404)


def respond(head):
    try:
        line = head.split(b"\n")[0].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return error(400), "(no request line)", True
    parts = line.split(" ")
    if len(parts) != 3:
        return error(400), line, True
    method, target, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        return error(505), line, method != "HEAD"
    if method not in ("GET", "HEAD"):
        status, headers, body = error(405)
        allow = headers + [("Allow", "GET, HEAD")]
        return (status, allow, body), f"{method} {target}", True
    try:
        answer = route(target)
    except UnicodeDecodeError:
        answer = error(400)
    return answer, f"{method} {target}", method == "GET"


def status_and_headers(status, headers, body):
    """The status line and the headers, ending in the empty line."""
    lines = [f"HTTP/1.1 {status} {REASONS[status]}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            self.answer(self.request, show(self.client_address))
        finally:
            seats.release()                     # the caller's seat

    def answer(self, conn, peer):
        deadline = time.monotonic() + args.idle_timeout   # for the whole head
        head = b""
        try:
            while b"\r\n\r\n" not in head and b"\n\n" not in head:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout
                conn.settimeout(left)
                chunk = conn.recv(MAX_HEAD + 1 - len(head))
                if not chunk:
                    log(f"client {peer}: hung up before a whole request")
                    return
                head += chunk
                if len(head) > MAX_HEAD:
                    break
        except socket.timeout:
            log(f"client {peer}: no request within {args.idle_timeout} s, closing")
            return
        except OSError:
            log(f"client {peer}: hung up before a whole request")
            return
        if len(head) > MAX_HEAD:
            (status, headers, body), asked, send_body = error(431), "(no request line)", True
        else:
            (status, headers, body), asked, send_body = respond(head)
        log(f"client {peer}: {asked!r} -> {status} ({len(body)} bytes)")
        try:
            conn.sendall(status_and_headers(status, headers, body) + (body if send_body else b""))
            conn.shutdown(socket.SHUT_WR)               # the end of our answer
            stop, drained = time.monotonic() + 1, 0     # drain, so no reset
            while drained < 65536 and time.monotonic() < stop:  # eats it
                conn.settimeout(max(stop - time.monotonic(), 0.001))
                chunk = conn.recv(4096)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True                       # Ctrl-C does not wait
    allow_reuse_address = True
    request_queue_size = 128                    # listen(128), as Rust's std
    failures = 0                                # accepts failed in a row

    def get_request(self):
        """accept(), saying once when it fails and once when it works again."""
        try:
            call = super().get_request()
        except OSError as err:                  # "too many open files"
            if self.failures == 0:
                log(f"accept failed: {err}; trying again every 100 ms")
            self.failures += 1
            time.sleep(0.1)                     # do not spin
            raise                               # socketserver tries again
        if self.failures:
            log(f"accept works again after {self.failures} failures")
            self.failures = 0
        return call

    def verify_request(self, request, client_address):
        """A seat for the caller, or 503 without reading its request."""
        if seats.acquire(blocking=False):
            return True
        n = args.max_clients
        body = f"server full: {n} clients are being served, try again later\n"
        kind = [("Content-Type", "text/plain; charset=utf-8")]
        log(f"client {show(client_address)}: turned away, the server is full -> 503")
        try:
            request.sendall(status_and_headers(503, kind, body.encode()) + body.encode())
            request.shutdown(socket.SHUT_WR)
            request.setblocking(False)          # drop what came, no waiting
            for _ in range(16):
                if not request.recv(4096):
                    break
        except OSError:
            pass
        return False                            # socketserver hangs up

    def process_request(self, request, client_address):
        try:
            super().process_request(request, client_address)  # a thread
        except RuntimeError as err:             # no thread left
            seats.release()
            log(f"client {show(client_address)}: could not be served: {err}; hanging up")
            self.shutdown_request(request)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9009")
parser.add_argument("--dir")
parser.add_argument("--idle-timeout", type=int, default=10, metavar="SECS")
parser.add_argument("--max-clients", type=int, default=100, metavar="N")
args = parser.parse_args()
seats = threading.BoundedSemaphore(args.max_clients)
if args.dir:
    args.dir = os.path.realpath(args.dir)
host, _, port = args.addr.rpartition(":")
with Server((host.strip("[]"), int(port)), Handler) as server:
    print("listening on", show(server.server_address), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
