"""Lesson 10 server in Python: lesson 06's chat room on one thread, with selectors.

Usage: python3 server.py [ADDR] [--max-clients N]   (default 127.0.0.1:9010; stop it with Ctrl-C)
"""
import argparse
import selectors
import signal
import socket
import time

MAX_LINE = 8192             # the longest line we accept, without its "\n"
QUEUE_LINES = 256           # lines that may wait for one client; more: too slow
SEND_DEADLINE = 5.0         # seconds a line may wait for a client; more: too slow
ACCEPT_AGAIN = 0.1          # seconds before we try accept again after it failed

sel = selectors.DefaultSelector()   # epoll on Linux, kqueue on macOS: mio's Poll
members = {}                        # socket -> Member: everybody, leaving or not
paused = False                      # some queue is full: read nobody (backpressure)
accept_again_at = None              # set while the listener rests after a failed accept
accept_failures = 0                 # failed accepts in a row, logged once


class Member:
    def __init__(self, conn, peer):
        self.conn, self.peer, self.name = conn, peer, peer
        self.input = b""            # bytes that do not yet end with "\n"
        self.queue = []             # [queued at, bytes]: lines for them, oldest first
        self.in_room = True         # False: leaving, we only finish sending
        self.events = 0             # what the selector watches for us

    def deadline(self):
        """When the oldest line for them has waited too long, if one waits."""
        return self.queue[0][0] + SEND_DEADLINE if self.queue else None


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9010' or '[::1]:9010', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def in_room():
    return [m for m in members.values() if m.in_room]


def room_full():
    return any(len(m.queue) >= QUEUE_LINES for m in in_room())


def watch(m):
    """What the selector should tell us about m: readable while m is in the
    room and nobody's queue is full, writable while lines wait for m."""
    events = selectors.EVENT_READ if m.in_room and not paused else 0
    events |= selectors.EVENT_WRITE if m.queue else 0
    if events == m.events:
        return
    if not m.events:
        sel.register(m.conn, events, m)
    elif not events:
        sel.unregister(m.conn)
    else:
        sel.modify(m.conn, events, m)
    m.events = events


def queue(m, data):
    """Add a line to a member's queue, then send what their socket takes."""
    if m.conn not in members:
        return
    m.queue.append([time.monotonic(), data])
    flush(m)


def flush(m):
    try:
        while m.queue:
            line = m.queue[0][1]
            n = m.conn.send(line)              # non-blocking: may take only part
            if n < len(line):
                m.queue[0][1] = line[n:]
                break                          # the socket is full for now
            m.queue.pop(0)
    except BlockingIOError:
        pass                                   # full: wait for "writable"
    except OSError as err:
        hang_up(m, f"disconnected ({err})")
        return
    if not m.queue and not m.in_room:
        close(m)                               # left, and everything is sent
        return
    watch(m)                                   # "writable" only while pending


def send(text, to):
    for m in in_room():
        if to(m):
            queue(m, (text + "\n").encode())


def tell(m, text):
    queue(m, (text + "\n").encode())


def close(m):
    members.pop(m.conn, None)
    if m.events:
        sel.unregister(m.conn)
    try:
        m.conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    m.conn.close()


def leave(m, why):
    """Out of the room now; the connection closes when its output is sent."""
    if not m.in_room:
        return
    m.in_room = False
    print(f"client {m.peer} {why}")
    send(f"* {m.name} left", lambda to: True)
    if m.conn in members:
        flush(m)


def hang_up(m, why):
    """Close at once: what was not sent is dropped."""
    if m.conn not in members:
        return
    was_in_room = m.in_room
    m.in_room = False
    close(m)
    if was_in_room:
        print(f"client {m.peer} {why}")
        send(f"* {m.name} left", lambda to: True)


def accept_all(listener):
    global accept_again_at, accept_failures
    while True:                                # until the queue is empty
        try:
            conn, addr = listener.accept()
        except BlockingIOError:
            return
        except OSError as err:                 # usually "too many open files"
            # The caller stays in the queue, so the listener stays readable:
            # selectors would report it at once, again and again. Stop
            # watching it, and try again shortly (mio's edge needs this too).
            if not accept_failures:            # once, not ten times a second
                print(f"accept failed: {err}; trying again every 100 ms")
            accept_failures += 1
            sel.unregister(listener)
            accept_again_at = time.monotonic() + ACCEPT_AGAIN
            return
        if accept_failures:
            print(f"accept works again after {accept_failures} failures")
            accept_failures = 0
        peer = show(addr)
        if len(in_room()) >= args.max_clients:
            conn.sendall(b"* server full\n")
            print(f"client {peer} turned away: the room is full")
            conn.close()
            continue
        conn.setblocking(False)
        m = Member(conn, peer)
        members[conn] = m
        watch(m)
        tell(m, f"* welcome, you are {peer}; commands: /nick NAME, /who, /quit")
        print(f"client {peer} connected")
        send(f"* {peer} joined", lambda to: to is not m)


def read_from(m):
    """One recv per event: selectors report the socket again while data is
    left (level-triggered), so one member cannot keep the loop to itself."""
    if b"\n" not in m.input:                  # no recv while a whole line waits
        try:
            data = m.conn.recv(4096)
        except BlockingIOError:
            return
        except OSError as err:
            hang_up(m, f"disconnected ({err})")
            return
        if not data:                           # the end of the stream
            last, m.input = m.input, b""
            if not last or handle_line(m, last):
                leave(m, "disconnected")
            return
        m.input += data
    handle_input(m)


def handle_input(m):
    """The whole lines in m's input, as long as every queue has space."""
    while m.in_room and not room_full():
        end = m.input.find(b"\n")
        if end < 0 and len(m.input) <= MAX_LINE:
            return
        if end < 0 or end > MAX_LINE:
            tell(m, f"* line too long (max {MAX_LINE} bytes), disconnecting")
            leave(m, "sent a line that was too long, disconnected")
            return
        line, m.input = m.input[:end], m.input[end + 1:]
        if not handle_line(m, line):
            return


def handle_line(m, line):
    """Lesson 06's commands. Returns False once they left."""
    line = line.removesuffix(b"\r")
    text = line.decode("utf-8", errors="replace")
    text = "".join("\ufffd" if ord(c) < 32 and c != "\t" or 127 <= ord(c) < 160 else c for c in text)
    print(f"client {m.peer} said {text!r}")
    command, _, rest = text.partition(" ")
    if command == "/quit":
        tell(m, "* bye")
        leave(m, "left with /quit")
    elif command == "/who":
        names = sorted(o.name for o in in_room())
        tell(m, f"* {len(names)} in the room: {', '.join(names)}")
    elif command == "/nick":
        rename(m, rest.strip())
    elif command.startswith("/"):
        tell(m, f"* unknown command {command}; try /nick NAME, /who or /quit")
    elif text:
        send(f"{m.name}: {text}", lambda to: to is not m)
    return m.in_room and m.conn in members


def rename(m, wanted):
    if not (1 <= len(wanted) <= 20 and all(c.isalnum() or c in "_-" for c in wanted)):
        tell(m, "* a name is 1 to 20 letters, digits, _ or -")
    elif any(o.name == wanted for o in in_room() if o is not m):
        tell(m, f"* the name {wanted} is taken")
    else:
        old, m.name = m.name, wanted
        print(f"client {m.peer} is now {wanted}")
        send(f"* {old} is now {wanted}", lambda to: to is not m)
        tell(m, f"* you are now {wanted}")


def check_deadlines():
    now = time.monotonic()
    for m in [m for m in members.values() if m.queue and m.deadline() <= now]:
        hang_up(m, "was too slow, disconnected")


def shut_down(listener):
    global accept_again_at
    print("Ctrl-C: telling everybody the server is shutting down")
    if accept_again_at is None:                # else it is not registered now
        sel.unregister(listener)
    accept_again_at = None
    listener.close()
    for m in members.values():
        m.in_room = False
    for m in list(members.values()):
        queue(m, b"* server shutting down\n")


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not at least 1")
    return value


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9010")
parser.add_argument("--max-clients", type=positive, default=100)
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")
host = host.strip("[]")
family = socket.AF_INET6 if ":" in host else socket.AF_INET
listener = socket.create_server((host, int(port)), family=family)
listener.setblocking(False)
sel.register(listener, selectors.EVENT_READ, None)
print("listening on", show(listener.getsockname()), flush=True)

# Ctrl-C must not raise KeyboardInterrupt in the middle of a handler (after a
# send, before we noted it was sent). The handler does nothing; Python writes
# the signal's number to `wake_w`, which makes `wake_r` ready: mio's Waker.
wake_r, wake_w = socket.socketpair()
wake_r.setblocking(False)
wake_w.setblocking(False)
signal.set_wakeup_fd(wake_w.fileno())
signal.signal(signal.SIGINT, lambda signum, frame: None)
sel.register(wake_r, selectors.EVENT_READ, "ctrl-c")

running = True
while running or members:
    # The event loop: wait for ready sockets or the next deadline, handle each.
    deadlines = [m.deadline() for m in members.values() if m.queue]
    if accept_again_at is not None:
        deadlines.append(accept_again_at)
    timeout = max(0, min(deadlines) - time.monotonic()) if deadlines else None
    for key, events in sel.select(timeout):
        if key.data is None:
            accept_all(key.fileobj)
        elif key.data == "ctrl-c":
            wake_r.recv(64)
            if running:                        # once: a second Ctrl-C changes nothing
                running = False
                shut_down(listener)
        else:
            m = key.data
            if events & selectors.EVENT_READ:
                read_from(m)
            if events & selectors.EVENT_WRITE and m.conn in members:
                flush(m)
    if accept_again_at is not None and accept_again_at <= time.monotonic():
        accept_again_at = None                 # watch the listener again
        sel.register(listener, selectors.EVENT_READ, None)
        accept_all(listener)
    check_deadlines()
    if room_full() != paused:                  # stop or go on reading everybody
        paused = not paused
        for m in list(members.values()):
            watch(m)
        for m in [m for m in in_room() if not paused and b"\n" in m.input]:
            handle_input(m)                    # lines that waited for space
print("server stopped")
