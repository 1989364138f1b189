"""Lesson 06 server in Python: a chat room, a thread per caller.

Usage: python3 server.py [ADDR] [--max-clients N]   (default 127.0.0.1:9006; stop it with Ctrl-C)
"""
import argparse
import queue
import select
import socket
import socketserver
import threading
import time

MAX_LINE = 8192      # the longest line we accept, without its "\n"
QUEUE_LINES = 256    # lines that may wait for one client; more: too slow, hang up
SEND_DEADLINE = 5.0  # seconds a line may wait for one client; more: too slow, hang up

room = {}                  # address -> Member: everybody in the room
lock = threading.Lock()    # only one thread at a time looks inside `room`


class Member:
    def __init__(self, name, conn):
        self.name = name
        self.conn = conn
        self.outbox = queue.Queue(QUEUE_LINES)   # bounded, like sync_channel(256)
        self.writer = None


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9006' or '[::1]:9006', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_lines(member, peer):
    """The writer thread: the only one that writes to this client's socket."""
    while True:
        item = member.outbox.get()
        if item is None:                       # the room let this client go
            break
        queued, line = item
        try:
            send_by(member.conn, line, queued + SEND_DEADLINE)
        except TimeoutError:
            leave(peer, "was too slow, disconnected", now=True)
            break
        except OSError as err:
            print(f"client {peer}: sending failed ({err}); hanging up")
            break
    hang_up(member.conn)


def send_by(conn, data, deadline):
    """sendall, but give up with TimeoutError at the deadline."""
    while data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        select.select([], [conn], [], left)    # until it can take some
        try:                                   # take what fits, do not wait
            data = data[conn.send(data, getattr(socket, "MSG_DONTWAIT", 0)):]
        except BlockingIOError:
            pass


def hang_up(conn):
    try:
        conn.shutdown(socket.SHUT_RDWR)        # also wakes a thread blocked on it
    except OSError:
        pass                                   # already gone


def send(text, to):
    """Queue `text` for every member `to` says yes to; never write while locked."""
    line = (text + "\n").encode()
    too_slow = []
    with lock:
        for addr, member in room.items():
            if to(addr):
                try:
                    member.outbox.put_nowait((time.monotonic(), line))
                except queue.Full:
                    too_slow.append(addr)
    for addr in too_slow:
        leave(addr, "was too slow, disconnected", now=True)


def leave(peer, why, now=False):
    """Take a client out of the room (once), log why, tell the others."""
    with lock:
        member = room.pop(peer, None)
    if member is None:
        return                                 # somebody else did it already
    if now:
        hang_up(member.conn)                   # stuck: do not wait for their writer
    else:
        try:
            member.outbox.put_nowait(None)     # the writer sends what is queued, then stops
        except queue.Full:
            hang_up(member.conn)
    print(f"client {peer} {why}")
    send(f"* {member.name} left", lambda to: True)


def rename(peer, name, wanted):
    ok = 1 <= len(wanted) <= 20 and all(c.isalnum() or c in "_-" for c in wanted)
    if not ok:
        send("* a name is 1 to 20 letters, digits, _ or -", lambda to: to == peer)
        return name
    with lock:                                 # check and take the name at once
        taken = any(m.name == wanted for a, m in room.items() if a != peer)
        if not taken and peer in room:
            room[peer].name = wanted
    if taken:
        send(f"* the name {wanted} is taken", lambda to: to == peer)
        return name
    print(f"client {peer} is now {wanted}")
    send(f"* {name} is now {wanted}", lambda to: to != peer)
    send(f"* you are now {wanted}", lambda to: to == peer)
    return wanted


def talk(conn, peer):
    """The communication loop of one client; returns why it ended."""
    name = peer
    lines = conn.makefile("rb")
    while True:
        line = lines.readline(MAX_LINE + 1)   # never more than MAX_LINE + 1 bytes
        if not line:
            return "disconnected"
        if line.endswith(b"\n"):
            line = line[:-1]
        elif len(line) > MAX_LINE:
            send(f"* line too long (max {MAX_LINE} bytes), disconnecting", lambda to: to == peer)
            return "sent a line that was too long, disconnected"
        line = line.removesuffix(b"\r")
        text = line.decode("utf-8", errors="replace")
        # Control characters (but tab) become U+FFFD too: a terminal would obey
        # an Escape sequence sent to the others.
        text = "".join("\ufffd" if ord(c) < 32 and c != "\t" or 127 <= ord(c) < 160 else c for c in text)
        print(f"client {peer} said {text!r}")
        command, _, rest = text.partition(" ")
        if command == "/quit":
            send("* bye", lambda to: to == peer)
            return "left with /quit"
        elif command == "/who":
            with lock:
                names = sorted(m.name for m in room.values())
            send(f"* {len(names)} in the room: {', '.join(names)}", lambda to: to == peer)
        elif command == "/nick":
            name = rename(peer, name, rest.strip())
        elif command.startswith("/"):
            send(f"* unknown command {command}; try /nick NAME, /who or /quit",
                 lambda to: to == peer)
        elif text:
            send(f"{name}: {text}", lambda to: to != peer)


class Handler(socketserver.BaseRequestHandler):
    def handle(self):                          # runs on a new thread for each caller
        conn, peer = self.request, show(self.client_address)
        member = Member(peer, conn)
        member.writer = threading.Thread(target=write_lines, args=(member, peer), daemon=True)
        member.writer.start()
        welcome = f"* welcome, you are {peer}; commands: /nick NAME, /who, /quit\n"
        with lock:                             # check and add at once: callers race here
            full = len(room) >= args.max_clients
            if not full:
                member.outbox.put_nowait((time.monotonic(), welcome.encode()))
                room[peer] = member
        if full:
            conn.sendall(b"* server full\n")
            print(f"client {peer} turned away: the room is full")
            member.outbox.put_nowait(None)     # stop the writer; it hangs up
            return
        print(f"client {peer} connected")
        send(f"* {peer} joined", lambda to: to != peer)
        try:
            why = talk(conn, peer)
        except OSError as err:                 # a reset, say
            why = f"disconnected ({err})"
        leave(peer, why)
        # socketserver closes the socket when we return: let the writer finish.
        member.writer.join(10)


class ChatServer(socketserver.ThreadingTCPServer):
    daemon_threads = True                      # do not wait for callers at exit
    allow_reuse_address = True                 # as TcpListener::bind on Unix
    failures = 0                               # failed accepts in a row

    def get_request(self):
        """accept, with failures logged once per episode."""
        try:
            request = self.socket.accept()
        except OSError as err:                 # usually "too many open files"
            if not self.failures:              # once, not ten times a second
                print(f"accept failed: {err}; trying again every 100 ms")
            self.failures += 1
            time.sleep(0.1)                    # the caller waits in the queue
            raise                              # socketserver gives up on this turn
        if self.failures:
            print(f"accept works again after {self.failures} failures")
            self.failures = 0
        return request


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9006")
parser.add_argument("--max-clients", type=int, default=100)
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")
host = host.strip("[]")
if ":" in host:
    ChatServer.address_family = socket.AF_INET6

server = ChatServer((host, int(port)), Handler)   # socket, bind, listen
print("listening on", show(server.server_address), flush=True)
try:
    server.serve_forever()                     # the accept loop, on this thread
except KeyboardInterrupt:                      # Ctrl-C
    print("Ctrl-C: telling everybody the server is shutting down")
    with lock:                                 # everybody out of the room at once
        members = list(room.values())
        room.clear()
    for member in members:
        try:
            member.outbox.put_nowait((time.monotonic(), b"* server shutting down\n"))
            member.outbox.put_nowait(None)
        except queue.Full:
            hang_up(member.conn)
    deadline = time.monotonic() + SEND_DEADLINE
    for member in members:                     # the goodbye's deadline, for all
        member.writer.join(max(0, deadline - time.monotonic()))
    print("server stopped")
