"""Python's own web server for lesson 09's benchmark: http.server's
ThreadingHTTPServer (a thread per connection) serving the same page as
lesson09-server at /, with its usual log line per request on stderr.

Usage: python3 http_server.py [ADDR]    (default 127.0.0.1:9009)
"""
import http.server
import sys

PAGE = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<title>不要回答</title></head>\n"
        "<body><h1> 不要回答！！！不要回答！！！不要回答！！！</h1></body></html>\n"
        ).encode("utf-8")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path == "/"
        body = PAGE if found else b"not found\n"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128                   # listen(128), as Rust's std


host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9009").rpartition(":")
with Server((host, int(port)), Handler) as server:
    print("listening on %s:%d" % server.server_address[:2], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
