"""Lesson 13 proxy in Python: a bad network on your desk, with asyncio.

Usage: python3 proxy.py --to UPSTREAM [ADDR] [--split N] [--delay MS] [--rate BYTES_PER_SEC]
         [--cut-after BYTES | --reset-after BYTES | --stall-after BYTES] [--seed S] [--max-clients N]
       python3 proxy.py --udp --to UPSTREAM [ADDR] [--drop PCT] [--duplicate PCT] [--reorder PCT]
(default 127.0.0.1:9013; stop it with Ctrl-C)
"""
import argparse
import asyncio
import os
import signal
import socket
import struct
import sys
import time

BUFFER = 16 * 1024       # how much of a stream we read at once, per direction
CONNECT_TIMEOUT = 10     # seconds the server may take to answer our call
GOODBYE = 10             # seconds a cut call may take to hang up
RATE_SLACK = 0.1         # seconds --rate may fall behind and still catch up
HOLD = 0.1               # seconds a reordered datagram waits to be overtaken
IDLE = 60                # seconds after which a quiet UDP client may be forgotten
MASK = (1 << 64) - 1     # Python's integers never overflow: we cut them to 64 bits


class Rng:
    """SplitMix64, line for line as in the Rust proxy: same seed, same choices."""

    def __init__(self, state):
        self.state = state & MASK

    @staticmethod
    def stream(seed, number):
        mixer = Rng(seed ^ (number * 0xD1B54A32D192ED03))
        return Rng(mixer.next())

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n

    def chance(self, pct):
        return self.below(100) < pct


def log(line):
    try:
        print(line, flush=True)
    except OSError:                                # stdout closed: keep forwarding
        pass


def show(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bytes_(n):
    return "1 byte" if n == 1 else f"{n} bytes"


def split_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Way:
    """One direction of one call: 'client A -> server' or 'client A <- server'."""

    def __init__(self, peer, up):
        self.peer, self.up = peer, up

    def __str__(self):
        return f"client {self.peer} {'->' if self.up else '<-'} server"


# ---------------------------------------------------------------- TCP

class Call:
    """What both directions of one call share: the faults and the bytes passed."""

    def __init__(self, args, number):
        self.args, self.number, self.passed = args, number, 0
        self.ending, self.after = ending_of(args)

    def take(self, want):
        """Up to `want` bytes of what may pass before the ending fault; is it due?"""
        if self.ending is None:
            return want, False
        granted = min(max(self.after - self.passed, 0), want)
        self.passed += granted
        return granted, self.passed >= self.after


def ending_of(args):
    for kind in ("cut", "reset", "stall"):
        after = getattr(args, f"{kind}_after")
        if after is not None:
            return kind, after
    return None, None


async def pump(reader, writer, way, call):
    """One direction: read, pass on in pieces shaped by the faults, half-close."""
    args = call.args
    rng = Rng.stream(args.seed, call.number * 2 + (0 if way.up else 1))
    shaping = args.split or args.delay is not None or args.rate
    next_slot = time.monotonic()
    if call.ending and call.passed >= call.after:
        return ("fault", call.ending)
    while True:
        try:
            data = await reader.read(BUFFER)
        except OSError:
            return ("broken", way.up, "reading")   # the side we read from failed
        if not data:
            try:
                writer.write_eof()                 # pass the end on as a half-close
                await writer.drain()
            except OSError:
                return ("broken", not way.up, "writing")
            log(f"{way}: end of stream, passed on")
            return ("done",)
        while data:
            size = len(data)
            if args.split:
                size = min(size, 1 + rng.below(args.split))
            if args.delay is not None:
                await asyncio.sleep(args.delay / 1000)
            if args.rate:
                size = min(size, max(args.rate // 10, 1))
                next_slot = max(next_slot, time.monotonic() - RATE_SLACK)
                await asyncio.sleep(next_slot - time.monotonic())
                next_slot += size / args.rate
            size, due = call.take(size)
            if size:
                try:
                    writer.write(data[:size])
                    await writer.drain()
                except OSError:
                    return ("broken", not way.up, "writing")
                if shaping:
                    log(f"{way}: {bytes_(size)}")
            if due:
                return ("fault", call.ending)
            data = data[size:]


def reset(writer):
    """SO_LINGER 0: closing sends an RST instead of a FIN (lesson 04)."""
    try:
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def drain(reader):
    try:
        while await reader.read(4096):
            pass
    except OSError:
        pass


async def relay(client_reader, client_writer, args, number):
    peer = show(client_writer.get_extra_info("peername"))
    log(f"client {peer} connected")
    try:
        host, port = split_addr(args.to)
        server_reader, server_writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        reset(client_writer)                       # a refusal is a reset on the wire
        log(f"client {peer}: {args.to} did not answer, resetting")
        return
    except OSError as err:
        reset(client_writer)
        log(f"client {peer}: cannot reach {args.to} ({err.strerror}), resetting")
        return
    call = Call(args, number)
    ways = {asyncio.ensure_future(pump(client_reader, server_writer, Way(peer, True), call)),
            asyncio.ensure_future(pump(server_reader, client_writer, Way(peer, False), call))}
    flow = ("done",)
    while ways:                                    # both directions, or one ending for both
        finished, ways = await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
        flow = finished.pop().result()
        if flow[0] != "done":
            if flow[0] == "broken" and flow[2] == "writing" and ways:
                # The side we wrote to is gone, but what it sent before going
                # still comes the other way, which reads from it: let it end.
                try:
                    await asyncio.wait_for(asyncio.gather(*ways), GOODBYE)
                except asyncio.TimeoutError:
                    pass
            for way in ways:
                way.cancel()
            break
    if flow[0] == "broken":
        who, other = ("client", server_writer) if flow[1] else ("server", client_writer)
        reset(other)
        log(f"client {peer}: the {who} reset the connection, passed on")
    elif flow == ("fault", "reset"):
        reset(client_writer)
        reset(server_writer)
        log(f"client {peer}: reset after {bytes_(call.passed)}")
    elif flow == ("fault", "cut"):
        log(f"client {peer}: cut after {bytes_(call.passed)}")
        for writer in (client_writer, server_writer):
            try:
                writer.write_eof()
            except OSError:
                pass
        try:
            await asyncio.wait_for(asyncio.gather(drain(client_reader), drain(server_reader)), GOODBYE)
        except asyncio.TimeoutError:
            pass
    elif flow == ("fault", "stall"):
        log(f"client {peer}: stalled after {bytes_(call.passed)}")
        await asyncio.gather(drain(client_reader), drain(server_reader))
    for writer in (client_writer, server_writer):
        writer.close()
    log(f"client {peer} disconnected")


async def serve_tcp(args):
    callers = 0
    seated = 0

    async def caller(reader, writer):
        nonlocal callers, seated
        callers += 1
        if seated >= args.max_clients:
            log(f"client {show(writer.get_extra_info('peername'))} turned away: "
                f"{args.max_clients} callers already")
            writer.close()
            return
        seated += 1
        try:
            await relay(reader, writer, args, callers)
        finally:
            seated -= 1

    host, port = split_addr(args.addr)
    stop = stop_signal()
    try:
        server = await asyncio.start_server(caller, host, port)
    except OSError as err:
        sys.exit(f"error: could not listen on {args.addr} (is another server using it? "
                 f"pass another address, e.g. 127.0.0.1:0): {err}")
    listening(server.sockets[0].getsockname(), args)
    log(f"forwarding to {args.to}, faults: {describe(args)}")
    await stop.wait()
    server.close()


# ---------------------------------------------------------------- UDP

class Faulty:
    """The faults of one direction of one UDP session."""

    def __init__(self, args, stream, way, send):
        self.args, self.way, self.send = args, way, send
        self.rng = Rng.stream(args.seed, stream)
        self.count, self.held, self.timer = 0, None, None

    def arrive(self, datagram):
        self.count += 1
        n, way, args = self.count, self.way, self.args
        lose = self.rng.chance(args.drop)          # three choices, always drawn
        twice = self.rng.chance(args.duplicate)
        hold = self.rng.chance(args.reorder)
        overtaken, self.held = self.held, None
        if self.timer:
            self.timer.cancel()
        out = []
        if lose:
            log(f"{way}: datagram {n} dropped")
        else:
            if twice:
                log(f"{way}: datagram {n} sent twice")
            mine = [datagram] * (2 if twice else 1)
            if hold and overtaken is None:
                log(f"{way}: datagram {n} held back")
                self.held = mine
                self.timer = asyncio.get_running_loop().call_later(HOLD, self.late)
            else:
                out += mine
        out += overtaken or []
        for datagram in out:
            self.send(datagram)

    def late(self):
        held, self.held = self.held, None
        for datagram in held or []:
            self.send(datagram)


class Session(asyncio.DatagramProtocol):
    """One sender: its own socket towards the server, and each way's faults."""

    def __init__(self, relay, client, number):
        self.relay, self.client, self.heard = relay, client, time.monotonic()
        peer = show(client)
        self.ups = Faulty(relay.args, number * 2, Way(peer, True), self.to_server)
        self.downs = Faulty(relay.args, number * 2 + 1, Way(peer, False), self.to_client)
        self.transport, self.waiting = None, []

    def to_server(self, datagram):
        if self.transport:
            self.transport.sendto(datagram)

    def to_client(self, datagram):
        self.relay.transport.sendto(datagram, self.client)

    def connection_made(self, transport):
        self.transport = transport
        for datagram in self.waiting:              # what came while we connected
            self.ups.arrive(datagram)
        self.waiting = []

    def datagram_received(self, data, addr):
        self.downs.arrive(data)

    def error_received(self, exc):                 # an earlier datagram found no server
        pass


class Relay(asyncio.DatagramProtocol):
    def __init__(self, args):
        self.args, self.sessions, self.count, self.transport = args, {}, 0, None

    def connection_made(self, transport):
        self.transport = transport

    def error_received(self, exc):
        pass

    def datagram_received(self, data, addr):
        session = self.sessions.get(addr) or self.open(addr)
        if session is None:
            return
        session.heard = time.monotonic()
        if session.transport is None:
            if len(session.waiting) < 64:
                session.waiting.append(data)
        else:
            session.ups.arrive(data)

    def open(self, addr):
        if len(self.sessions) >= self.args.max_clients:
            now = time.monotonic()
            for client, session in list(self.sessions.items()):
                if now - session.heard >= IDLE:
                    log(f"client {show(client)} quiet for {IDLE} s, forgotten")
                    del self.sessions[client]
                    if session.transport:
                        session.transport.close()
            if len(self.sessions) >= self.args.max_clients:
                log(f"client {show(addr)} turned away: {self.args.max_clients} callers already")
                return None
        self.count += 1
        session = Session(self, addr, self.count)
        self.sessions[addr] = session
        log(f"client {show(addr)} connected")
        loop = asyncio.get_running_loop()
        loop.create_task(loop.create_datagram_endpoint(
            lambda: session, remote_addr=split_addr(self.args.to)))
        return session


async def serve_udp(args):
    host, port = split_addr(args.addr)
    loop = asyncio.get_running_loop()
    stop = stop_signal()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: Relay(args), local_addr=(host, port))
    except OSError as err:
        sys.exit(f"error: could not listen on {args.addr} (is another server using it? "
                 f"pass another address, e.g. 127.0.0.1:0): {err}")
    listening(transport.get_extra_info("sockname"), args)
    log(f"forwarding datagrams to {args.to}, faults: {describe(args)}")
    await stop.wait()
    transport.close()


# ---------------------------------------------------------------- both

def listening(sockname, args):
    addr = show(sockname)
    log(f"listening on {addr}")
    log(f"seed {args.seed}")
    if sockname[0] not in ("127.0.0.1", "::1"):
        print(f"warning: listening on {addr}: other machines on the network can now connect",
              file=sys.stderr, flush=True)


def describe(args):
    words = []
    if args.split:
        words.append(f"split {args.split}")
    if args.delay is not None:
        words.append(f"delay {args.delay} ms")
    if args.rate:
        words.append(f"rate {args.rate} bytes/s")
    ending, after = ending_of(args)
    if ending:
        words.append(f"{ending} after {after}")
    for name in ("drop", "duplicate", "reorder"):
        if getattr(args, name):
            words.append(f"{name} {getattr(args, name)}%")
    return ", ".join(words) or "none"


def stop_signal():
    """An event set by Ctrl-C, or SIGTERM where there is one: set up before we
    listen, so that a signal sent as soon as we print our address is not lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        try:
            loop.add_signal_handler(getattr(signal, name), stop.set)
        except (NotImplementedError, AttributeError):
            pass                                   # Windows: Ctrl-C raises instead
    return stop


def address(text):
    """'127.0.0.1:9013', '[::1]:9013' or 'localhost:9013', kept as text."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not IP:PORT")
    return text


def at_least(low):
    def parse(text):
        if not text.isdigit() or int(text) < low:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number from {low} up")
        return int(text)
    return parse


def percent(text):
    if not text.isdigit() or int(text) > 100:
        raise argparse.ArgumentTypeError(f"'{text}' is not a percentage from 0 to 100")
    return int(text)


class Parser(argparse.ArgumentParser):
    def error(self, message):                      # one line, exit 2, as in Rust
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


parser = Parser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9013", type=address)
parser.add_argument("--to", type=address, metavar="UPSTREAM")
parser.add_argument("--split", type=at_least(1), metavar="N")
parser.add_argument("--delay", type=at_least(0), metavar="MS")
parser.add_argument("--rate", type=at_least(1), metavar="BYTES_PER_SEC")
ending = parser.add_mutually_exclusive_group()
ending.add_argument("--cut-after", type=at_least(0), metavar="BYTES")
ending.add_argument("--reset-after", type=at_least(0), metavar="BYTES")
ending.add_argument("--stall-after", type=at_least(0), metavar="BYTES")
parser.add_argument("--udp", action="store_true")
parser.add_argument("--drop", type=percent, default=0, metavar="PCT")
parser.add_argument("--duplicate", type=percent, default=0, metavar="PCT")
parser.add_argument("--reorder", type=percent, default=0, metavar="PCT")
parser.add_argument("--seed", type=at_least(0), metavar="S")
parser.add_argument("--max-clients", type=at_least(1), default=100, metavar="N")
args = parser.parse_args()
if args.udp and (args.split or args.delay is not None or args.rate or ending_of(args)[0]):
    parser.error("--split, --delay, --rate and --*-after work only over TCP, not with --udp")
if not args.udp and (args.drop or args.duplicate or args.reorder):
    parser.error("--drop, --duplicate and --reorder need --udp")
if args.to is None:
    parser.error("--to UPSTREAM is missing: the server to forward to, e.g. --to 127.0.0.1:9004")
if args.seed is None:
    args.seed = Rng(time.time_ns() ^ os.getpid()).next() % 1_000_000
try:
    asyncio.run(serve_udp(args) if args.udp else serve_tcp(args))
except KeyboardInterrupt:
    pass
log("proxy stopped")
