//! Lesson 06 server: a chat room where everybody talks at once.
//!
//! Lesson 03's server picked up one call at a time: while it talked with one
//! caller, everyone else waited in the queue. A chat room needs all callers on
//! the line together, so here every caller gets two threads of their own, as
//! Python's `socketserver.ThreadingTCPServer` gives each caller one:
//!
//! - a *reader* thread that reads their lines and acts on them, and
//! - a *writer* thread that sends them what the others say, from a queue.
//!
//! The callers meet in the *room*: one map from address to name and queue,
//! shared by all threads as `Arc<Mutex<HashMap<..>>>`. To say something to
//! everyone, a thread locks the room and drops the line into each queue. It
//! never writes to a socket while it holds the lock, so a caller who stops
//! reading can hold up nobody but their own writer.

// ANCHOR: imports
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
// The chat protocol, written once for the course's three chat servers.
use lesson06_protocol::{self as protocol, MAX_LINE, QUEUE_LINES, SEND_DEADLINE, To};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 06 server: a chat room. Each line a client sends goes to all the
/// others; /nick NAME, /who and /quit are commands. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0 lets the system pick)
    #[arg(default_value = "127.0.0.1:9006", value_parser = shared::parse_addr)]
    addr: String,

    /// How many clients may be in the room at once; the next one is turned away
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, args.max_clients))
}
// ANCHOR_END: args

// ANCHOR: limits
/// A line in a member's queue, and the moment it was queued: it must be on
/// its way to them within `SEND_DEADLINE` of that moment.
type Line = (Instant, Arc<str>);
// ANCHOR_END: limits

// ANCHOR: room
/// One client in the room, as every thread can see them.
struct Member {
    /// Their address until they choose a name with `/nick`.
    name: String,
    /// The sending end of their outgoing queue. Their writer thread holds the
    /// receiving end; `SyncSender` is the bounded kind of channel.
    outbox: SyncSender<Line>,
    /// Their socket, so that any thread can hang up on them.
    conn: Arc<TcpStream>,
    /// Their writer thread, so that Ctrl-C can wait until it said goodbye.
    writer: JoinHandle<()>,
}

/// Everybody in the room, by address. While our socket for a caller is open,
/// no other connection can have the same address, so it is a safe key.
///
/// `Arc` lets every thread own a pointer to the one map; `Mutex` lets only one
/// thread at a time look inside.
type Room = Arc<Mutex<HashMap<SocketAddr, Member>>>;

/// Locks the room. A `Mutex` is "poisoned" if a thread panicked while holding
/// it; every change we make is one insert or remove, so the map is still whole
/// and we carry on instead of panicking too.
fn lock(room: &Room) -> MutexGuard<'_, HashMap<SocketAddr, Member>> {
    room.lock().unwrap_or_else(PoisonError::into_inner)
}
// ANCHOR_END: room

// ANCHOR: bind
fn run(addr: &str, max_clients: usize) -> anyhow::Result<()> {
    // Buy the phone, insert the SIM, switch it on: one call, as in step 1
    // (lesson06-echo-server). Then set up the empty room.
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    let room: Room = Arc::new(Mutex::new(HashMap::new()));
    // ANCHOR_END: bind

    // ANCHOR: ctrl-c
    // Ctrl-C sends the signal SIGINT. By default it kills the process on the
    // spot and every client just sees the line go dead. With a handler, the
    // `ctrlc` crate runs our function on a thread of its own instead.
    let everyone = Arc::clone(&room);
    ctrlc::set_handler(move || shut_down(&everyone))
        .context("could not install the Ctrl-C handler")?;
    // Only now do we say where we listen: whoever reads that line may press
    // Ctrl-C at once, and the handler is ready for it.
    shared::print_listening(listener.local_addr()?);
    // ANCHOR_END: ctrl-c

    // ANCHOR: accept-loop
    // The connection loop (链接循环) of lesson 03, but this thread only picks
    // up: the talking happens on the threads that `admit` starts, so the next
    // caller is picked up at once.
    let mut failures = shared::AcceptLog::default();
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(call) => call,
            Err(err) => {
                // Usually "too many open files". The caller stays in the
                // queue, so trying again at once would fail again at once:
                // pause a moment instead of spinning, and say so once.
                failures.failed(&err);
                thread::sleep(shared::ACCEPT_RETRY);
                continue;
            }
        };
        failures.worked();
        if let Err(err) = admit(&room, conn, peer, max_clients) {
            println!("client {peer} could not be served: {err}");
        }
    }
    // ANCHOR_END: accept-loop
}

// ANCHOR: admit
/// Lets a caller into the room: checks there is space, starts their writer,
/// adds them to the map, greets them, and starts their reader.
fn admit(room: &Room, conn: TcpStream, peer: SocketAddr, max_clients: usize) -> io::Result<()> {
    // Only this thread adds members, so the count cannot grow between this
    // check and the insert below.
    if lock(room).len() >= max_clients {
        // A new socket's send buffer is empty: this short write cannot block.
        (&conn).write_all(format!("{}\n", protocol::SERVER_FULL).as_bytes())?;
        println!("client {peer} turned away: the room is full");
        return Ok(()); // dropping `conn` hangs up
    }
    // One socket, shared by the reader, the writer and the room. Reading and
    // writing work through a shared reference (`&TcpStream` implements `Read`
    // and `Write`), so nobody needs a copy of their own.
    let conn = Arc::new(conn);
    let (outbox, queue) = mpsc::sync_channel(QUEUE_LINES);
    // `Builder::spawn` returns an error when the system has no thread left
    // for us; plain `thread::spawn` would panic.
    let writer = {
        let conn = Arc::clone(&conn);
        thread::Builder::new()
            .name(format!("writer {peer}"))
            .spawn({
                let room = Arc::clone(room);
                move || write_lines(&room, &conn, peer, queue)
            })?
    };
    // ANCHOR_END: admit

    // ANCHOR: join
    // Queue the welcome and add the member in one locked moment: no other
    // line can get into the queue before the welcome, and whoever reads the
    // welcome is already in the room.
    let name = peer.to_string();
    let welcome = format!("{}\n", protocol::welcome(&name));
    {
        let mut members = lock(room);
        let _ = outbox.try_send((Instant::now(), welcome.into())); // an empty queue has space
        let member = Member {
            name: name.clone(),
            outbox,
            conn: Arc::clone(&conn),
            writer,
        };
        members.insert(peer, member);
    }
    println!("client {peer} connected");
    send(room, &protocol::joined(&name), |to| to != peer);

    let in_room = Arc::clone(room);
    let reader = thread::Builder::new()
        .name(format!("reader {peer}"))
        .spawn(move || serve(&in_room, &conn, peer));
    if let Err(err) = reader {
        leave(room, peer, "left: no thread to serve them");
        return Err(err);
    }
    Ok(())
}
// ANCHOR_END: join

// ANCHOR: writer
/// The writer thread: sends each queued line to its client, in order.
///
/// It is the only thread that writes to this socket, so lines never get mixed
/// up, and the only one that ever waits for this client: a client who does
/// not read stalls their own writer and nobody else.
fn write_lines(room: &Room, conn: &TcpStream, peer: SocketAddr, queue: Receiver<Line>) {
    // The loop ends when every sender is gone, i.e. the room has let this
    // client go; the lines queued before that are still delivered.
    for (queued, line) in queue {
        match write_by(conn, line.as_bytes(), queued + SEND_DEADLINE) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::TimedOut => {
                hang_up_on_slow(room, peer);
                break;
            }
            Err(err) => {
                println!("client {peer}: sending failed ({err}); hanging up");
                break;
            }
        }
    }
    // Hang up. This also wakes their reader thread if it is still reading,
    // so it takes them out of the room.
    let _ = conn.shutdown(Shutdown::Both);
}

/// Writes all of `bytes` to `conn` before `deadline`, or fails with
/// `TimedOut`. The socket's write timeout makes each `write` give up at
/// the deadline (Unix reports that as `WouldBlock`, Windows as `TimedOut`).
fn write_by(mut conn: &TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => {} // the deadline, next turn
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
// ANCHOR_END: writer

// ANCHOR: serve
/// The reader thread: reads a client's lines until they leave, then takes
/// them out of the room (Python: the `handle` method of a request handler).
fn serve(room: &Room, conn: &TcpStream, peer: SocketAddr) {
    match talk(room, conn, peer) {
        Ok(why) => leave(room, peer, why),
        Err(err) => leave(room, peer, &format!("disconnected ({err})")),
    }
}
// ANCHOR_END: serve

// ANCHOR: read-line
/// The communication loop (通信循环) of one client. Returns why it ended.
fn talk(room: &Room, conn: &TcpStream, peer: SocketAddr) -> io::Result<&'static str> {
    let mut reader = BufReader::new(conn);
    let mut line = Vec::new();
    loop {
        // TCP is a byte stream, so we frame messages by `\n`. `take` makes
        // `read_until` stop after MAX_LINE + 1 bytes even if no `\n` comes:
        // a client sending endless bytes cannot make `line` grow for ever.
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok("disconnected"); // they hung up
        }
        if line.ends_with(b"\n") {
            line.pop();
        } else if line.len() > MAX_LINE {
            tell(room, peer, &protocol::too_long());
            return Ok("sent a line that was too long, disconnected");
        }
        // (No `\n` and not too long: their last line before hanging up. It
        // is handled like any other; the next read returns 0.)
        // ANCHOR_END: read-line

        // ANCHOR: commands
        // What the line means is the protocol's business; sending the
        // answer is ours.
        let mut roster = Speaker { room, peer };
        let answer = protocol::handle_line(&mut roster, peer, &line);
        for (to, text) in &answer.lines {
            match to {
                To::Me => tell(room, peer, text),
                To::Others => send(room, text, |addr| addr != peer),
            }
        }
        if let Some(why) = answer.leave {
            return Ok(why);
        }
    }
}

/// The room as the protocol sees it from one member: their name, all the
/// names, and taking a new one. Each call locks the room for a moment.
struct Speaker<'a> {
    room: &'a Room,
    peer: SocketAddr,
}

impl protocol::Roster for Speaker<'_> {
    fn my_name(&self) -> String {
        let members = lock(self.room);
        let me = members.get(&self.peer);
        me.map_or_else(|| self.peer.to_string(), |me| me.name.clone())
    }

    fn names(&self) -> Vec<String> {
        lock(self.room).values().map(|m| m.name.clone()).collect()
    }

    /// Checks and takes the name under one lock, so two clients asking for
    /// the same name at the same moment cannot both get it.
    fn take_name(&mut self, wanted: &str) -> bool {
        let mut members = lock(self.room);
        let taken = members
            .iter()
            .any(|(&addr, member)| addr != self.peer && member.name == wanted);
        if let (false, Some(me)) = (taken, members.get_mut(&self.peer)) {
            me.name = wanted.to_string();
        }
        !taken
    }
}
// ANCHOR_END: commands

// ANCHOR: send
/// Puts `text` in the outgoing queue of every member for whom `to` says yes.
///
/// The one rule of this server: never touch a socket while holding the lock.
/// `try_send` only drops the line into a queue and never waits. If a queue is
/// full, that client's writer is stuck on a client who does not read; waiting
/// for them here would keep the lock, and every thread that needs the lock
/// (that is, the whole room) would wait too. So we only note them, and after
/// unlocking we hang up on them.
fn send(room: &Room, text: &str, to: impl Fn(SocketAddr) -> bool) {
    // One copy of the line, however many queues hold it.
    let line: Arc<str> = format!("{text}\n").into();
    let now = Instant::now();
    let mut too_slow = Vec::new();
    {
        let members = lock(room);
        for (&addr, member) in members.iter() {
            if !to(addr) {
                continue;
            }
            if let Err(TrySendError::Full(_)) = member.outbox.try_send((now, Arc::clone(&line))) {
                too_slow.push(addr);
            }
            // (`Disconnected` means their writer has stopped: it hung up, and
            // their reader is about to take them out of the room.)
        }
    } // the lock is released here
    for addr in too_slow {
        hang_up_on_slow(room, addr);
    }
}

/// Puts `text` in the queue of one member only: answers, errors, notices.
fn tell(room: &Room, peer: SocketAddr, text: &str) {
    send(room, text, |to| to == peer);
}
// ANCHOR_END: send

// ANCHOR: leave
/// Takes a client out of the room (if still there), logs why, tells the others.
///
/// Several threads may notice that a client is gone; only the one that takes
/// them out of the map goes on, so each departure is announced once.
/// Dropping the member drops the queue's sender: their writer delivers what is
/// still queued (a last error line, say), then hangs up.
fn leave(room: &Room, peer: SocketAddr, why: &str) {
    let removed = lock(room).remove(&peer); // locked for this line only
    if let Some(member) = removed {
        println!("client {peer} {why}");
        send(room, &protocol::left(&member.name), |_| true);
    }
}

/// Hangs up on a client whose queue is full, without waiting for their writer.
fn hang_up_on_slow(room: &Room, peer: SocketAddr) {
    let removed = lock(room).remove(&peer);
    if let Some(member) = removed {
        // Their writer is stuck in a write that may never finish. Shutting the
        // socket down makes that write fail, and their reader sees the end.
        let _ = member.conn.shutdown(Shutdown::Both);
        println!("client {peer} was too slow, disconnected");
        send(room, &protocol::left(&member.name), |_| true);
    }
}
// ANCHOR_END: leave

// ANCHOR: shut-down
/// Runs on the Ctrl-C thread: says goodbye to everybody, then ends the process.
fn shut_down(room: &Room) {
    println!("Ctrl-C: telling everybody the server is shutting down");
    // Everybody out of the room in one locked moment, so that nobody hears
    // "left" about the others. The lock is free again before we wait.
    let members: Vec<Member> = lock(room).drain().map(|(_, member)| member).collect();
    let notice: Arc<str> = format!("{}\n", protocol::SHUTTING_DOWN).into();
    let mut writers = Vec::new();
    for member in members {
        if member
            .outbox
            .try_send((Instant::now(), Arc::clone(&notice)))
            .is_err()
        {
            // Queue full: a client who does not read. Do not wait for them.
            let _ = member.conn.shutdown(Shutdown::Both);
        }
        writers.push(member.writer);
        // The rest of `member`, its queue's sender included, is dropped here:
        // the writer sends what is queued, the notice last, then hangs up,
        // within SEND_DEADLINE for a client who does not read.
    }
    for writer in writers {
        let _ = writer.join();
    }
    println!("server stopped");
    std::process::exit(0);
}
// ANCHOR_END: shut-down
