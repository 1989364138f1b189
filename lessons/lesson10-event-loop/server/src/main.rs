//! Lesson 10 server: lesson 06's chat room on one thread.
//!
//! Lesson 06 gave every caller two threads, each of which spends nearly all
//! its life blocked in `read` or `write`. Here one thread serves everybody.
//! Every socket is *non-blocking*: a call that would have to wait returns
//! `WouldBlock` at once instead. One call, `Poll::poll`, waits for all the
//! sockets together and says which of them are ready (Python: `selectors`).
//! The loop then does, in order, what can be done without waiting, and goes
//! back to `poll`. That is an event loop (事件循环).
//!
//! The room, its limits and its protocol are lesson 06's: the protocol
//! comes from lesson 06's library, `lesson06-protocol`.

// ANCHOR: imports
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use lesson06_protocol::{self as protocol, MAX_LINE, QUEUE_LINES, To};
use lesson06_protocol::{MAX_CLIENTS, SEND_DEADLINE};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 10 server: lesson 06's chat room, on one thread with an event
/// loop. Each line a client sends goes to all the others; /nick NAME, /who
/// and /quit are commands. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0
    /// lets the system pick)
    #[arg(default_value = "127.0.0.1:9010", value_parser = shared::parse_addr)]
    addr: String,

    /// How many clients may be in the room at once; the next one is turned
    /// away
    #[arg(long, default_value_t = MAX_CLIENTS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args.addr, args.max_clients))
}
// ANCHOR_END: args

// ANCHOR: limits
/// How many lines of one member the loop handles in one turn before it
/// goes on to the next member: nobody can keep the loop to themselves.
const READ_BUDGET: usize = 16;

/// The tokens by which `poll` names what is ready. Clients get the numbers
/// after these, each a new one, so an old event never names a new client.
const LISTENER: Token = Token(0);
const CTRL_C: Token = Token(1);
// ANCHOR_END: limits

// ANCHOR: member
/// One client. Everything the loop knows about them is here, because no
/// call may wait: what they sent is kept until it makes a whole line, what
/// they are sent is kept until their socket takes it.
struct Member {
    conn: TcpStream,
    addr: SocketAddr,
    /// Their address until they choose a name with `/nick`.
    name: String,
    /// Bytes read from them that do not yet end with `\n`.
    input: Vec<u8>,
    /// The lines for them, oldest first, each with the moment it was
    /// queued: lesson 06's queue, and the same limits.
    queue: VecDeque<(Instant, Arc<str>)>,
    /// How many bytes of the first line their socket has taken already.
    sent: usize,
    /// What `poll` last said of their socket and no `WouldBlock` has taken
    /// back since. mio reports a change ("has become readable") once, not a
    /// state, so the loop must remember it.
    readable: bool,
    writable: bool,
    state: State,
}

/// Where a member is in their life in the room. Every step of the loop
/// looks at this, and only [`Server::leave`] and [`Server::settle`]
/// change it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the room: we read their lines, they hear the others'.
    InRoom,
    /// Out of the room: they get what is queued for them, then we hang up.
    Leaving,
    /// To be hung up on now, whatever is still queued.
    Done,
}

/// The whole server: the room, and the `Poll` its sockets are registered in.
struct Server {
    poll: Poll,
    members: HashMap<Token, Member>,
    next_token: usize,
    /// How many members are in the room (not counting those leaving).
    in_room: usize,
    /// The members whose sockets have lines for us, in turn: whoever used
    /// up their budget goes to the back.
    to_read: VecDeque<Token>,
    /// Whether some member's queue is full: then the loop reads no more
    /// lines from anybody until there is space (backpressure).
    room_full: bool,
    max_clients: usize,
    /// When to call `accept` again, after it failed with callers waiting.
    accept_again_at: Option<Instant>,
    /// Says once that `accept` fails, and once that it works again.
    accept_failures: shared::AcceptLog,
}
// ANCHOR_END: member

// ANCHOR: bind
fn run(addr: &str, max_clients: usize) -> anyhow::Result<()> {
    // Bind with std, which resolves `localhost:PORT`, then hand the socket
    // to mio, which makes it non-blocking.
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| shared::cannot_listen(addr))?;
    std_listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(std_listener);
    shared::print_listening(listener.local_addr()?);

    let poll = Poll::new().context("could not create the poll")?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    // ANCHOR_END: bind

    // ANCHOR: ctrl-c
    // On Unix, Ctrl-C is the signal SIGINT. `Signals` is registered like a
    // socket: its signal handler writes a byte into a pipe that the poll
    // watches, so Ctrl-C arrives as the token CTRL_C, on this same thread.
    #[cfg(unix)]
    let mut ctrl_c =
        signal_hook_mio::v1_0::Signals::new([signal_hook::consts::SIGINT])
            .context("could not listen for Ctrl-C")?;
    #[cfg(unix)]
    poll.registry()
        .register(&mut ctrl_c, CTRL_C, Interest::READABLE)?;

    // Windows runs a Ctrl-C handler on a thread of its own. That thread
    // must not touch the room, which belongs to the loop: it only wakes the
    // loop, which then sees the token CTRL_C as on Unix.
    #[cfg(not(unix))]
    {
        let waker = mio::Waker::new(poll.registry(), CTRL_C)?;
        ctrlc::set_handler(move || {
            let _ = waker.wake();
        })
        .context("could not install the Ctrl-C handler")?;
    }
    // ANCHOR_END: ctrl-c

    // ANCHOR: start
    // The empty room, and the loop that runs it until Ctrl-C.
    let mut server = Server {
        poll,
        members: HashMap::new(),
        next_token: 2,
        in_room: 0,
        to_read: VecDeque::new(),
        room_full: false,
        max_clients,
        accept_again_at: None,
        accept_failures: shared::AcceptLog::default(),
    };
    server.event_loop(listener)
}

impl Server {
    // ANCHOR_END: start
    // ANCHOR: event-loop
    /// The event loop. Each turn: wait, note what is ready, then do in
    /// order everything that can be done without waiting.
    fn event_loop(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        let mut listener = Some(listener);
        let mut events = Events::with_capacity(1024);
        let mut timeout = None; // the first wait: until something happens
        loop {
            // 1. Wait until a socket is ready or the next deadline comes.
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("poll failed"),
            }

            // 2. Note what the events say; act on none of it yet.
            let mut callers_waiting = false;
            for event in events.iter() {
                match event.token() {
                    LISTENER => callers_waiting = true,
                    CTRL_C => {
                        // Stop taking calls, and say goodbye to everybody
                        // (once: a second Ctrl-C changes nothing).
                        if listener.take().is_some() {
                            self.shut_down();
                        }
                    }
                    token => {
                        let Some(member) = self.members.get_mut(&token) else {
                            continue; // gone since: an old event
                        };
                        // A socket that closed or failed is readable too:
                        // the next `read` says how it ended.
                        let readable = event.is_readable()
                            || event.is_read_closed()
                            || event.is_error();
                        if readable && !member.readable {
                            member.readable = true;
                            self.to_read.push_back(token);
                        }
                        member.writable |=
                            event.is_writable() || event.is_write_closed();
                    }
                }
            }

            // 3. Pick up callers. After a failed `accept` they may still
            //    wait in the queue, and mio reports the listener only when
            //    somebody new calls: so we also try again at a deadline.
            let now = Instant::now();
            let retry = self.accept_again_at.is_some_and(|at| at <= now);
            if let (Some(listener), true) =
                (&listener, callers_waiting || retry)
            {
                self.accept_all(listener);
            }

            // 4. Read: each member whose socket has news, in turn, a few
            //    lines each, for as long as every queue has space.
            self.room_full = self.members.values().any(Member::is_full);
            for _ in 0..self.to_read.len() {
                if self.room_full {
                    break; // the rest keep their place in the line
                }
                let Some(token) = self.to_read.pop_front() else {
                    break;
                };
                if self.read_from(token) {
                    self.to_read.push_back(token); // more to read: next turn
                }
            }

            // 5. Write, and settle: everybody's queue goes out as far as
            //    their socket takes it; who is done is hung up on. This
            //    also finds how long the next wait may be.
            let tokens: Vec<Token> = self.members.keys().copied().collect();
            let mut next_deadline = self.accept_again_at;
            for &token in &tokens {
                if let Some(at) = self.settle(token) {
                    next_deadline =
                        Some(next_deadline.map_or(at, |t| t.min(at)));
                }
            }
            if listener.is_none() && self.members.is_empty() {
                println!("server stopped");
                return Ok(());
            }
            // Lines left to read (a member used up their budget), or to
            // write (queued since that member's turn): go round again at
            // once instead of waiting.
            let room_full = self.members.values().any(Member::is_full);
            let pending = (!room_full && !self.to_read.is_empty())
                || self
                    .members
                    .values()
                    .any(|m| m.writable && !m.queue.is_empty());
            timeout = if pending {
                Some(Duration::ZERO)
            } else {
                next_deadline.map(|at| at.saturating_duration_since(now))
            };
        }
    }
    // ANCHOR_END: event-loop

    // ANCHOR: accept
    /// Picks up every caller waiting in the queue. `poll` reported the
    /// listener once; if we took only one caller, the others would wait
    /// until the next one rang. So we accept until `WouldBlock`.
    fn accept_all(&mut self, listener: &TcpListener) {
        self.accept_again_at = None;
        loop {
            match listener.accept() {
                Ok((conn, peer)) => {
                    self.accept_failures.worked();
                    self.admit(conn, peer);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    // Usually "too many open files". The caller stays in the
                    // queue, and mio will not report the listener again
                    // until somebody else calls: we set ourselves a deadline
                    // to try again, when a member may have left.
                    self.accept_failures.failed(&err);
                    let again = Instant::now() + shared::ACCEPT_RETRY;
                    self.accept_again_at = Some(again);
                    return;
                }
            }
        }
    }
    // ANCHOR_END: accept

    // ANCHOR: admit
    /// Lets a caller into the room, or turns them away if it is full.
    fn admit(&mut self, mut conn: TcpStream, peer: SocketAddr) {
        if self.in_room >= self.max_clients {
            // A new socket's send buffer is empty: this short write fits.
            let full = format!("{}\n", protocol::SERVER_FULL);
            let _ = conn.write_all(full.as_bytes());
            println!("client {peer} turned away: the room is full");
            return; // dropping `conn` hangs up
        }
        let token = Token(self.next_token);
        self.next_token += 1;
        // Readable and writable, once and for all: mio reports each when it
        // *becomes* true, so neither wakes us again and again.
        let both = Interest::READABLE | Interest::WRITABLE;
        if let Err(err) = self.poll.registry().register(&mut conn, token, both)
        {
            println!("client {peer} could not be served: {err}");
            return;
        }
        let name = peer.to_string();
        let member = Member {
            conn,
            addr: peer,
            name: name.clone(),
            input: Vec::new(),
            queue: VecDeque::new(),
            sent: 0,
            readable: false,
            writable: true, // a new socket's send buffer is empty
            state: State::InRoom,
        };
        self.members.insert(token, member);
        self.in_room += 1;
        self.tell(token, &protocol::welcome(&name));
        println!("client {peer} connected");
        self.send(&protocol::joined(&name), |to| to != token);
    }
    // ANCHOR_END: admit

    // ANCHOR: read
    /// Reads a member's lines and handles them: at most READ_BUDGET lines,
    /// and none while some queue is full. Returns whether their socket may
    /// hold more, that is, whether it is still their turn to be read.
    ///
    /// mio reports a socket when it *becomes* readable. Until `read` says
    /// `WouldBlock`, the rest waits, unreported: so `readable` stays set,
    /// and the member stays in `to_read`, until then.
    fn read_from(&mut self, token: Token) -> bool {
        let mut buf = [0; 4096];
        let mut lines = 0;
        loop {
            let Some(member) = self.members.get_mut(&token) else {
                return false;
            };
            if member.state != State::InRoom || !member.readable {
                return false;
            }
            if lines == READ_BUDGET || self.room_full {
                return true; // their turn again later
            }
            // A whole line already here? Handle it before reading more, so
            // that `input` never holds more than one line and one read.
            if let Some(end) = member.input.iter().position(|&b| b == b'\n') {
                if end > MAX_LINE {
                    self.too_long(token);
                    return false;
                }
                let mut line: Vec<u8> = member.input.drain(..=end).collect();
                line.pop(); // the `\n`
                self.handle_line(token, &line);
                lines += 1;
                continue;
            }
            if member.input.len() > MAX_LINE {
                self.too_long(token); // no `\n` in sight
                return false;
            }
            match member.conn.read(&mut buf) {
                // Ok(0) is the end of the stream, as in lesson 04: they hung
                // up. A last line without `\n` still counts.
                Ok(0) => {
                    let last = std::mem::take(&mut member.input);
                    if !last.is_empty() {
                        self.handle_line(token, &last);
                    }
                    self.leave(token, "disconnected", State::Leaving);
                    return false;
                }
                Ok(n) => member.input.extend_from_slice(&buf[..n]),
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    member.readable = false;
                    return false;
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    let why = format!("disconnected ({err})");
                    self.leave(token, &why, State::Done);
                    return false;
                }
            }
        }
    }

    fn too_long(&mut self, token: Token) {
        self.tell(token, &protocol::too_long());
        let why = "sent a line that was too long, disconnected";
        self.leave(token, why, State::Leaving);
    }
    // ANCHOR_END: read

    // ANCHOR: commands
    /// Acts on one line: lesson 06's protocol says what to send to whom,
    /// and whether they leave; we queue it.
    fn handle_line(&mut self, token: Token, line: &[u8]) {
        let Some(member) = self.members.get(&token) else {
            return;
        };
        let peer = member.addr;
        let mut roster = Speaker {
            members: &mut self.members,
            me: token,
        };
        let answer = protocol::handle_line(&mut roster, peer, line);
        for (to, text) in &answer.lines {
            match to {
                To::Me => self.tell(token, text),
                To::Others => self.send(text, |other| other != token),
            }
        }
        if let Some(why) = answer.leave {
            self.leave(token, why, State::Leaving);
        }
    }
}

/// The room as the protocol sees it from one member. One thread owns the
/// map: nobody can take a name between our check and our rename.
struct Speaker<'a> {
    members: &'a mut HashMap<Token, Member>,
    me: Token,
}

impl protocol::Roster for Speaker<'_> {
    fn my_name(&self) -> String {
        self.members[&self.me].name.clone()
    }

    fn names(&self) -> Vec<String> {
        let in_room =
            self.members.values().filter(|m| m.state == State::InRoom);
        in_room.map(|m| m.name.clone()).collect()
    }

    fn take_name(&mut self, wanted: &str) -> bool {
        let taken = self.members.iter().any(|(&other, member)| {
            other != self.me
                && member.state == State::InRoom
                && member.name == wanted
        });
        if let (false, Some(me)) = (taken, self.members.get_mut(&self.me)) {
            me.name = wanted.to_string();
        }
        !taken
    }
}

impl Server {
    // ANCHOR_END: commands

    // ANCHOR: send
    /// Queues `text` for every member in the room for whom `to` says yes.
    /// Nothing is written here: writing is step 5 of the loop.
    fn send(&mut self, text: &str, to: impl Fn(Token) -> bool) {
        // One copy of the line, however many queues hold it.
        let line: Arc<str> = format!("{text}\n").into();
        let now = Instant::now();
        for (&token, member) in &mut self.members {
            if member.state == State::InRoom && to(token) {
                member.queue.push_back((now, Arc::clone(&line)));
                // A queue that is full now stops all reading: backpressure.
                self.room_full |= member.is_full();
            }
        }
    }

    /// Queues `text` for one member only: answers and notices.
    fn tell(&mut self, token: Token, text: &str) {
        if let Some(member) = self.members.get_mut(&token) {
            let line: Arc<str> = format!("{text}\n").into();
            member.queue.push_back((Instant::now(), line));
            self.room_full |= member.is_full();
        }
    }
}

impl Member {
    /// Whether their queue is full. Then nobody's lines are read until it
    /// has space again: the senders wait, not the slow member's lines.
    /// (Notices, such as somebody joining, are still queued.)
    fn is_full(&self) -> bool {
        self.state == State::InRoom && self.queue.len() >= QUEUE_LINES
    }
}

impl Server {
    // ANCHOR_END: send

    // ANCHOR: settle
    /// Writes a member's queue as far as their socket takes it, then decides
    /// what becomes of them. Returns when their next deadline is, if any.
    ///
    /// A non-blocking `write` takes what fits in the socket's send buffer and
    /// says how much that was, maybe less than we offered (a partial write):
    /// `sent` remembers how far into the first line we are.
    fn settle(&mut self, token: Token) -> Option<Instant> {
        let member = self.members.get_mut(&token)?;
        let mut failed = None;
        while let (true, Some((_, line))) =
            (member.writable, member.queue.front())
        {
            match member.conn.write(&line.as_bytes()[member.sent..]) {
                Ok(n) => member.sent += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    member.writable = false;
                }
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
            if member.sent == line.len() {
                member.queue.pop_front();
                member.sent = 0;
            }
        }
        // The oldest line decides: it may wait SEND_DEADLINE, no longer.
        let oldest = member.queue.front().map(|&(queued, _)| queued);
        let too_slow = oldest.is_some_and(|at| at.elapsed() >= SEND_DEADLINE);
        if let Some(err) = failed {
            self.leave(token, &format!("disconnected ({err})"), State::Done);
        } else if too_slow {
            self.leave(token, "was too slow, disconnected", State::Done);
        }
        let member = self.members.get_mut(&token)?;
        if member.state == State::Leaving && member.queue.is_empty() {
            member.state = State::Done; // everything sent: now hang up
        }
        if member.state == State::Done {
            let _ = member.conn.shutdown(Shutdown::Both);
            self.members.remove(&token); // dropping the socket closes it
            return None;
        }
        oldest.map(|at| at + SEND_DEADLINE)
    }
    // ANCHOR_END: settle

    // ANCHOR: leave
    /// Takes a member out of the room, logs why and tells the others; `then`
    /// says whether they still get what is queued for them (`Leaving`) or
    /// are hung up on at once (`Done`).
    fn leave(&mut self, token: Token, why: &str, then: State) {
        let Some(member) = self.members.get_mut(&token) else {
            return;
        };
        if member.state != State::InRoom {
            // Out of the room already: at most hang up sooner.
            if then == State::Done {
                member.state = State::Done;
            }
            return;
        }
        member.state = then;
        self.in_room -= 1;
        let notice = protocol::left(&member.name);
        println!("client {} {why}", member.addr);
        self.send(&notice, |_| true);
    }
    // ANCHOR_END: leave

    // ANCHOR: shut-down
    /// Ctrl-C: everybody leaves the room at once, without a word about the
    /// others, and gets the goodbye. The loop goes on until every queue is
    /// sent, or its deadline has passed for those who do not read; then
    /// `event_loop` returns and we exit 0.
    fn shut_down(&mut self) {
        println!("Ctrl-C: telling everybody the server is shutting down");
        let goodbye: Arc<str> = format!("{}\n", protocol::SHUTTING_DOWN).into();
        for member in self.members.values_mut() {
            if member.state == State::InRoom {
                member.state = State::Leaving;
                member
                    .queue
                    .push_back((Instant::now(), Arc::clone(&goodbye)));
            }
        }
        self.in_room = 0;
    }
    // ANCHOR_END: shut-down
}
