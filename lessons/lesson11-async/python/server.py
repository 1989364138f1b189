"""Lesson 11 server in Python: lesson 06's chat room as asyncio tasks.

Usage: python3 server.py [ADDR] [--max-clients N]   (default 127.0.0.1:9011; stop it with Ctrl-C)
"""
import argparse
import asyncio
import signal
import socket

MAX_LINE = 8192          # the longest line we accept, without its "\n"
QUEUE_LINES = 256        # lines that may wait for one client; more: too slow
SEND_DEADLINE = 5.0      # seconds a line may wait for one client; more: too slow

room = {}                # address -> Member. One thread: no lock needed.
space = asyncio.Event()  # set when a writer took a line: waiting senders look again
turns = asyncio.Lock()   # senders who wait for space, served first come, first served


class Member:
    def __init__(self, name, writer):
        self.name = name
        self.writer = writer                       # asyncio's StreamWriter
        self.outbox = asyncio.Queue()              # QUEUE_LINES is checked by talk()
        self.task = None                           # the writer task
        self.reader = None                         # the reader task


def show(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def write_lines(member, peer):
    """The writer task: the only one that writes to this client's socket."""
    loop = asyncio.get_running_loop()
    try:
        while (item := await member.outbox.get()) is not None:
            space.set()
            queued, line = item
            member.writer.write(line)
            # Wait while their buffer is full, but not past the line's deadline.
            await asyncio.wait_for(member.writer.drain(), queued + SEND_DEADLINE - loop.time())
        member.writer.write_eof()
    except TimeoutError:
        hang_up_on_slow(peer)
        return
    except (OSError, RuntimeError) as err:
        print(f"client {peer}: sending failed ({err}); hanging up")
    member.writer.close()


def hang_up_on_slow(addr):
    member = room.pop(addr, None)
    if member:
        member.task.cancel()                       # stuck in drain(): stop it
        member.reader.cancel()
        member.writer.transport.abort()
        print(f"client {addr} was too slow, disconnected")
        space.set()
        send(f"* {member.name} left", lambda to: True)


def send(text, to):
    line = (text + "\n").encode()
    for addr, member in room.items():
        if to(addr):
            member.outbox.put_nowait((loop_time(), line))


async def wait_for_space():
    """Backpressure: while some queue is full, the reader reads no more.
    One sender waits at a time and the others queue on the lock, in order:
    else a flooder, back first after each line, would take every free place."""
    async with turns:
        while any(m.outbox.qsize() >= QUEUE_LINES for m in room.values()):
            space.clear()
            await space.wait()


def loop_time():
    return asyncio.get_running_loop().time()


def leave(peer, why):
    member = room.pop(peer, None)
    if member is None:
        return
    member.outbox.put_nowait(None)                 # the writer sends what is queued, then stops
    space.set()
    print(f"client {peer} {why}")
    send(f"* {member.name} left", lambda to: True)


def rename(peer, name, wanted):
    ok = 1 <= len(wanted) <= 20 and all(c.isalnum() or c in "_-" for c in wanted)
    if not ok:
        send("* a name is 1 to 20 letters, digits, _ or -", lambda to: to == peer)
        return name
    if any(m.name == wanted for a, m in room.items() if a != peer):
        send(f"* the name {wanted} is taken", lambda to: to == peer)
        return name
    room[peer].name = wanted
    print(f"client {peer} is now {wanted}")
    send(f"* {name} is now {wanted}", lambda to: to != peer)
    send(f"* you are now {wanted}", lambda to: to == peer)
    return wanted


async def talk(reader, peer):
    """The communication loop of one client; returns why it ended."""
    name, buf = peer, b""
    while True:
        end = buf.find(b"\n")
        if end < 0 and len(buf) <= MAX_LINE:
            data = await reader.read(4096)         # waits; other tasks run meanwhile
            if data:
                buf += data
                continue
            if not buf:
                return "disconnected"
            line, buf = buf, b""                   # a last line without "\n"
        elif end < 0 or end > MAX_LINE:
            send(f"* line too long (max {MAX_LINE} bytes), disconnecting", lambda to: to == peer)
            return "sent a line that was too long, disconnected"
        else:
            line, buf = buf[:end], buf[end + 1:]
        await asyncio.sleep(0)                     # let the others have a turn too
        await wait_for_space()                     # handle it once every queue has space
        text = line.removesuffix(b"\r").decode("utf-8", errors="replace")
        text = "".join("\ufffd" if ord(c) < 32 and c != "\t" or 127 <= ord(c) < 160 else c for c in text)
        print(f"client {peer} said {text!r}")
        command, _, rest = text.partition(" ")
        if command == "/quit":
            send("* bye", lambda to: to == peer)
            return "left with /quit"
        elif command == "/who":
            names = sorted(m.name for m in room.values())
            send(f"* {len(names)} in the room: {', '.join(names)}", lambda to: to == peer)
        elif command == "/nick":
            name = rename(peer, name, rest.strip())
        elif command.startswith("/"):
            send(f"* unknown command {command}; try /nick NAME, /who or /quit", lambda to: to == peer)
        elif text:
            send(f"{name}: {text}", lambda to: to != peer)


async def accept_loop(listener):
    """Lesson 06's accept loop, with await where the thread used to block."""
    loop, failures = asyncio.get_running_loop(), 0
    while True:
        try:
            conn, _ = await loop.sock_accept(listener)
        except OSError as err:                 # usually "too many open files"
            if not failures:                   # once, not ten times a second
                print(f"accept failed: {err}; trying again every 100 ms")
            failures += 1
            await asyncio.sleep(0.1)
            continue
        if failures:
            print(f"accept works again after {failures} failures")
            failures = 0
        reader, writer = await asyncio.open_connection(sock=conn)
        asyncio.create_task(handle(reader, writer))   # a task per caller


async def handle(reader, writer):
    """A task per caller: accept_loop starts one for each."""
    peer = show(writer.get_extra_info("peername"))
    if len(room) >= args.max_clients:
        writer.write(b"* server full\n")
        print(f"client {peer} turned away: the room is full")
        await writer.drain()
        writer.close()
        return
    member = Member(peer, writer)
    member.task = asyncio.create_task(write_lines(member, peer))
    member.reader = asyncio.current_task()
    welcome = f"* welcome, you are {peer}; commands: /nick NAME, /who, /quit\n"
    member.outbox.put_nowait((loop_time(), welcome.encode()))
    room[peer] = member
    print(f"client {peer} connected")
    send(f"* {peer} joined", lambda to: to != peer)
    try:
        why = await talk(reader, peer)
    except OSError as err:
        why = f"disconnected ({err})"
    leave(peer, why)


async def main():
    host, _, port = args.addr.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, int(port)), family=family)
    listener.setblocking(False)
    print("listening on", show(listener.getsockname()), flush=True)
    accepting = asyncio.create_task(accept_loop(listener))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)   # Ctrl-C sets the event
    except NotImplementedError:                            # Windows
        signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()
    print("Ctrl-C: telling everybody the server is shutting down")
    accepting.cancel()                                     # no new callers
    listener.close()
    members = list(room.values())
    room.clear()
    for member in members:
        member.reader.cancel()
        member.outbox.put_nowait((loop_time(), b"* server shutting down\n"))
        member.outbox.put_nowait(None)
    writers = [m.task for m in members]
    if writers:                                            # each ends by its deadline
        await asyncio.wait(writers)
    print("server stopped")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9011")
parser.add_argument("--max-clients", type=int, default=100)
args = parser.parse_args()
asyncio.run(main())
