//! Lesson 11 server: lesson 06's chat room, as async tasks on tokio.
//!
//! Lesson 06 gave each caller a reader thread and a writer thread. Here each
//! caller gets a reader *task* and a writer *task*: the same code shape, but
//! a task is a small state machine, not a thread. A few threads of tokio's
//! runtime run all the tasks, with lesson 10's event loop underneath: when a
//! task reaches an `.await` that cannot go on yet, the runtime parks it and
//! runs another, and `poll` says when to wake it.
//!
//! The room, its limits and its protocol are lesson 06's (the protocol is
//! lesson 06's library), with lesson 10's answer to a full queue: the
//! senders wait.

// ANCHOR: imports
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use lesson06_protocol::{self as protocol, MAX_LINE, QUEUE_LINES, To};
use lesson06_protocol::{MAX_CLIENTS, SEND_DEADLINE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 11 server: lesson 06's chat room, as async tasks on tokio. Each
/// line a client sends goes to all the others; /nick NAME, /who and /quit
/// are commands. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0
    /// lets the system pick)
    #[arg(default_value = "127.0.0.1:9011", value_parser = shared::parse_addr)]
    addr: String,

    /// How many clients may be in the room at once; the next one is turned
    /// away
    #[arg(long, default_value_t = MAX_CLIENTS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

// `#[tokio::main]` builds the runtime (worker threads, one per core, and
// the event loop) and runs `main`'s body as its first task.
#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, args.max_clients).await)
}
// ANCHOR_END: args

// ANCHOR: room
/// A line in a member's queue, and the moment it was queued: it must be
/// sent within `SEND_DEADLINE` of that moment.
type Line = (Instant, Arc<str>);

/// One member, as every task can see them.
struct Member {
    name: String,
    /// Their bounded queue of lines; their writer task empties it.
    outbox: mpsc::Sender<Line>,
    /// Their writer task, so that we can stop it or wait for it.
    writer: JoinHandle<()>,
    /// Dropping this ends their reader task: a `oneshot` whose sender is
    /// gone wakes its receiver.
    _hang_up: oneshot::Sender<()>,
}

/// The room, shared by all tasks (through an `Arc`).
struct Room {
    /// Everybody in the room. A std `Mutex` is right here: we hold it only
    /// for a few map operations and never across an `.await`.
    members: Mutex<HashMap<SocketAddr, Member>>,
    /// Wakes the senders who wait for space in a queue: a writer took a
    /// line, or a member left.
    space: Notify,
}

fn lock(room: &Room) -> MutexGuard<'_, HashMap<SocketAddr, Member>> {
    room.members.lock().unwrap_or_else(PoisonError::into_inner)
}
// ANCHOR_END: room

// ANCHOR: run
async fn run(addr: &str, max_clients: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    let room = Arc::new(Room {
        members: Mutex::new(HashMap::new()),
        space: Notify::new(),
    });

    // Two things may happen first: a caller, or Ctrl-C. `select!` waits
    // for both and runs the branch of whichever comes first; the other
    // future is dropped. Dropping `accept_loop` cancels it between two
    // calls, which loses nothing (`accept` is cancellation safe).
    tokio::select! {
        () = accept_loop(&listener, &room, max_clients) => {}
        signal = tokio::signal::ctrl_c() => {
            signal.context("could not listen for Ctrl-C")?;
        }
    }
    drop(listener); // callers from now on are refused
    shut_down(&room).await;
    Ok(())
}
// ANCHOR_END: run

// ANCHOR: accept-loop
/// Lesson 06's accept loop, with `.await` where the thread used to block.
async fn accept_loop(listener: &TcpListener, room: &Arc<Room>, max: usize) {
    let mut failures = shared::AcceptLog::default();
    loop {
        match listener.accept().await {
            Ok((conn, peer)) => {
                failures.worked();
                admit(room, conn, peer, max).await;
            }
            Err(err) => {
                // Usually "too many open files": pause instead of spinning.
                // This sleep is a timer: no thread waits in it.
                failures.failed(&err);
                tokio::time::sleep(shared::ACCEPT_RETRY).await;
            }
        }
    }
}
// ANCHOR_END: accept-loop

// ANCHOR: admit
/// Lets a caller into the room: a writer task, a place in the map, the
/// welcome, and a reader task.
async fn admit(
    room: &Arc<Room>,
    conn: TcpStream,
    peer: SocketAddr,
    max: usize,
) {
    if lock(room).len() >= max {
        let mut conn = conn;
        let full = format!("{}\n", protocol::SERVER_FULL);
        let _ = conn.write_all(full.as_bytes()).await;
        println!("client {peer} turned away: the room is full");
        return;
    }
    // Two halves of one socket, each owned by one task.
    let (input, output) = conn.into_split();
    let (outbox, queue) = mpsc::channel(QUEUE_LINES);
    let (hang_up, hung_up) = oneshot::channel();
    let writer =
        tokio::spawn(write_lines(Arc::clone(room), output, peer, queue));
    let name = peer.to_string();
    let welcome = format!("{}\n", protocol::welcome(&name));
    {
        let mut members = lock(room);
        let _ = outbox.try_send((Instant::now(), welcome.into())); // it is empty
        let member = Member {
            name,
            outbox,
            writer,
            _hang_up: hang_up,
        };
        members.insert(peer, member);
    } // the guard is dropped here, before any `.await`
    println!("client {peer} connected");
    tokio::spawn(serve(Arc::clone(room), input, peer, hung_up));
}
// ANCHOR_END: admit

// ANCHOR: writer
/// The writer task: sends each queued line, in order, then hangs up.
/// `recv` returns `None` once the room dropped the queue's sender. A line
/// not sent by its deadline means a member too slow for the room.
async fn write_lines(
    room: Arc<Room>,
    mut output: OwnedWriteHalf,
    peer: SocketAddr,
    mut queue: mpsc::Receiver<Line>,
) {
    while let Some((queued, line)) = queue.recv().await {
        room.space.notify_waiters(); // one more line fits in this queue
        let deadline = queued + SEND_DEADLINE;
        let sent = tokio::time::timeout_at(
            deadline,
            output.write_all(line.as_bytes()),
        );
        match sent.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let why = format!("disconnected ({err})");
                return hang_up(&room, peer, &why).await;
            }
            Err(_) => {
                return hang_up(&room, peer, "was too slow, disconnected")
                    .await;
            }
        }
    }
    let _ = output.shutdown().await; // a FIN: we are done sending
}
// ANCHOR_END: writer

// ANCHOR: serve
/// The reader task: tells the room the caller is in, reads their lines
/// until they leave or until the room hangs up on them (`hung_up` fires),
/// then takes them out.
async fn serve(
    room: Arc<Room>,
    input: OwnedReadHalf,
    peer: SocketAddr,
    hung_up: oneshot::Receiver<()>,
) {
    let why = tokio::select! {
        why = talk(&room, input, peer) => why,
        // Hung up on by the room: `talk` is dropped in the middle of a
        // read (or a wait for space), and whatever it had is lost. Nobody
        // wants it now.
        _ = hung_up => return,
    };
    match why {
        Ok(why) => leave(&room, peer, why).await,
        Err(err) => leave(&room, peer, &format!("disconnected ({err})")).await,
    }
}
// ANCHOR_END: serve

// ANCHOR: read-line
/// The communication loop of one client, lesson 06's with `.await`.
async fn talk(
    room: &Room,
    input: OwnedReadHalf,
    peer: SocketAddr,
) -> std::io::Result<&'static str> {
    send(room, &protocol::joined(&peer.to_string()), |to| to != peer).await;
    // Every member has one of these buffers. The default, 8 KiB, makes
    // 80 MB for 10,000 members; lines pass through a small one just as well.
    let mut reader = BufReader::with_capacity(1024, input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = MAX_LINE as u64 + 1;
        let n = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok("disconnected");
        }
        if line.ends_with(b"\n") {
            line.pop();
        } else if line.len() > MAX_LINE {
            tell(room, peer, &protocol::too_long()).await;
            return Ok("sent a line that was too long, disconnected");
        }
        // ANCHOR_END: read-line

        // ANCHOR: commands
        let mut roster = Speaker { room, peer };
        let answer = protocol::handle_line(&mut roster, peer, &line);
        for (to, text) in &answer.lines {
            match to {
                To::Me => tell(room, peer, text).await,
                To::Others => send(room, text, |addr| addr != peer).await,
            }
        }
        if let Some(why) = answer.leave {
            return Ok(why);
        }
    }
}

/// The room as the protocol sees it from one member, as in lesson 06.
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
/// Puts `text` in the queue of every member for whom `to` says yes, all
/// at once. If one of those queues is full, nobody gets the line yet: we
/// wait until a writer has taken a line somewhere, and look again. While
/// we wait, this member's reader reads nothing more from them, their
/// socket's buffers fill, and their own sending slows down: backpressure.
async fn send(room: &Room, text: &str, to: impl Fn(SocketAddr) -> bool) {
    let line: Arc<str> = format!("{text}\n").into();
    loop {
        // Ask to be woken *before* looking: a line taken between our look
        // and our wait still wakes us.
        let space = room.space.notified();
        let mut space = std::pin::pin!(space);
        space.as_mut().enable();
        if send_now(room, &line, &to) {
            return;
        }
        space.await;
    }
}

/// Queues `line` for everybody `to` picks if every one of their queues has
/// space; else queues nothing. A plain function, not `async`: it holds the
/// lock, and cannot reach an `.await` while it does.
fn send_now(
    room: &Room,
    line: &Arc<str>,
    to: &impl Fn(SocketAddr) -> bool,
) -> bool {
    let members = lock(room);
    let mut picked = members.iter().filter(|&(&addr, _)| to(addr));
    if picked
        .clone()
        .any(|(_, member)| member.outbox.capacity() == 0)
    {
        return false;
    }
    let now = Instant::now();
    for (_, member) in &mut picked {
        // Only we send, under the lock: this cannot find the queue full.
        let _ = member.outbox.try_send((now, Arc::clone(line)));
    }
    true
}

async fn tell(room: &Room, peer: SocketAddr, text: &str) {
    send(room, text, |to| to == peer).await;
}
// ANCHOR_END: send

// ANCHOR: leave
/// Takes a client out of the room (once), logs why, tells the others.
/// Dropping the member drops the queue's sender: their writer sends what
/// is queued, then hangs up.
async fn leave(room: &Room, peer: SocketAddr, why: &str) {
    let removed = lock(room).remove(&peer);
    if let Some(member) = removed {
        room.space.notify_waiters(); // their queue blocks nobody now
        println!("client {peer} {why}");
        send(room, &protocol::left(&member.name), |_| true).await;
    }
}

/// Hangs up on a client at once, from their writer task, which failed or
/// gave up: dropping `_hang_up` stops their reader, and the writer ends.
async fn hang_up(room: &Room, peer: SocketAddr, why: &str) {
    let removed = lock(room).remove(&peer);
    if let Some(member) = removed {
        room.space.notify_waiters();
        println!("client {peer} {why}");
        send(room, &protocol::left(&member.name), |_| true).await;
    }
}
// ANCHOR_END: leave

// ANCHOR: shut-down
/// Ctrl-C: a goodbye in every queue, then we wait for the writers. Each
/// sends what is queued, the goodbye last, within SEND_DEADLINE of the
/// goodbye; a member who does not read cannot hold us up past it, because
/// their writer gives up at the deadline.
async fn shut_down(room: &Room) {
    println!("Ctrl-C: telling everybody the server is shutting down");
    let members: Vec<Member> = lock(room).drain().map(|(_, m)| m).collect();
    room.space.notify_waiters(); // nobody waits for anybody now
    let notice: Arc<str> = format!("{}\n", protocol::SHUTTING_DOWN).into();
    let mut writers = Vec::new();
    for member in members {
        let goodbye = (Instant::now(), Arc::clone(&notice));
        if member.outbox.try_send(goodbye).is_err() {
            member.writer.abort(); // queue full: they do not read
        }
        writers.push(member.writer);
        // The rest of `member` is dropped: the writer sees the end of its
        // queue after the notice, and the reader is told to stop.
    }
    for writer in writers {
        let _ = writer.await;
    }
    println!("server stopped");
}
// ANCHOR_END: shut-down
