//! Lesson 10 server: lesson 06's chat room on one thread.
//!
//! Lesson 06 gave every caller two threads, each of which spends nearly all
//! its life blocked in `read` or `write`. Here one thread serves everybody.
//! Every socket is *non-blocking*: a call that would have to wait returns
//! `WouldBlock` at once instead. One call, `Poll::poll`, waits for all the
//! sockets together and says which of them are ready (Python: `selectors`).
//! The loop then handles each ready socket, never waiting on any one, and
//! goes back to `poll`. That is an event loop (事件循环).

// ANCHOR: imports
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use lesson06_protocol::{self as protocol, MAX_LINE, To};
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
    #[arg(long, default_value_t = 100, value_parser = at_least_one())]
    max_clients: u64,

    /// Hang up on a client who sends nothing for this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = at_least_one())]
    idle_timeout: u64,
}

fn at_least_one() -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::new().range(1..)
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let idle = Duration::from_secs(args.idle_timeout);
    let max = usize::try_from(args.max_clients).unwrap_or(usize::MAX);
    shared::exit_status(run(&args.addr, max, idle))
}
// ANCHOR_END: args

// ANCHOR: limits
/// How many bytes may wait in one client's output buffer. A client who lets
/// it fill up is not reading, or is far too slow for the room: we hang up.
/// (Lesson 06 allowed 256 lines; 256 short lines are about this size.)
const MAX_OUTPUT: usize = 256 * 1024;

/// How long a client who is leaving has to take their last lines.
const LINGER: Duration = Duration::from_secs(5);

/// How soon we try `accept` again after it failed (too many open files).
const ACCEPT_AGAIN: Duration = Duration::from_millis(100);

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
    /// Bytes for them that their socket has not taken yet.
    output: Vec<u8>,
    /// Whether we asked `poll` to tell us when their socket is writable.
    wants_write: bool,
    /// `false` once they left the room: we only finish sending to them.
    in_room: bool,
    /// When we hang up if nothing happens: idle in the room, or lingering.
    deadline: Instant,
}

/// The whole server: the room, and the `Poll` its sockets are registered in.
struct Server {
    poll: Poll,
    members: HashMap<Token, Member>,
    next_token: usize,
    /// How many members are in the room (not counting those leaving).
    in_room: usize,
    max_clients: usize,
    idle: Duration,
    /// The earliest `deadline` of any member, so `poll` knows how long to wait.
    wake_at: Option<Instant>,
    /// When to call `accept` again, after it failed with callers waiting.
    accept_again_at: Option<Instant>,
}
// ANCHOR_END: member

// ANCHOR: bind
fn run(addr: &str, max_clients: usize, idle: Duration) -> anyhow::Result<()> {
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
        max_clients,
        idle,
        wake_at: None,
        accept_again_at: None,
    };
    server.event_loop(listener)
}

impl Server {
    // ANCHOR_END: start
    // ANCHOR: event-loop
    /// The event loop: wait, handle each ready socket, go back.
    fn event_loop(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        let mut listener = Some(listener);
        let mut events = Events::with_capacity(1024);
        loop {
            // Wait until some socket is ready, or the next deadline comes.
            let timeout = self
                .wake_at
                .map(|at| at.saturating_duration_since(Instant::now()));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("poll failed"),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => {
                        if let Some(listener) = &listener {
                            self.accept_all(listener);
                        }
                    }
                    CTRL_C => {
                        // Stop taking calls, and say goodbye to everybody
                        // (once: a second Ctrl-C changes nothing).
                        if listener.take().is_some() {
                            self.shut_down();
                        }
                    }
                    token => {
                        if event.is_readable() || event.is_read_closed() {
                            self.read_from(token);
                        }
                        if event.is_writable() {
                            self.flush(token);
                        }
                    }
                }
            }
            // After a failed `accept`, callers may still wait in the queue,
            // and mio reports the listener only when somebody new calls.
            if self.accept_again_at.is_some_and(|at| at <= Instant::now()) {
                self.accept_again_at = None;
                if let Some(listener) = &listener {
                    self.accept_all(listener);
                }
            }
            self.check_deadlines();
            if listener.is_none() && self.members.is_empty() {
                println!("server stopped");
                return Ok(());
            }
        }
    }
    // ANCHOR_END: event-loop

    // ANCHOR: accept
    /// Picks up every caller waiting in the queue. `poll` reported the
    /// listener once; if we took only one caller, the others would wait
    /// until the next one rang. So we accept until `WouldBlock`.
    fn accept_all(&mut self, listener: &TcpListener) {
        loop {
            match listener.accept() {
                Ok((conn, peer)) => self.admit(conn, peer),
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    // Usually "too many open files". The caller stays in the
                    // queue, and mio will not report the listener again
                    // until somebody else calls: we set ourselves a deadline
                    // to try again, when a member may have left.
                    println!("accept failed: {err}; trying again shortly");
                    let at = Instant::now() + ACCEPT_AGAIN;
                    self.accept_again_at = Some(at);
                    self.wake_no_later_than(at);
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
            let _ = conn.write_all(b"* server full\n");
            println!("client {peer} turned away: the room is full");
            return; // dropping `conn` hangs up
        }
        let token = Token(self.next_token);
        self.next_token += 1;
        // Readable only: asking for "writable" while there is nothing to
        // write would wake us again and again for nothing.
        let registry = self.poll.registry();
        if let Err(err) =
            registry.register(&mut conn, token, Interest::READABLE)
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
            output: Vec::new(),
            wants_write: false,
            in_room: true,
            deadline: Instant::now() + self.idle,
        };
        self.members.insert(token, member);
        self.in_room += 1;
        self.wake_no_later_than(Instant::now() + self.idle);
        let welcome = format!(
            "* welcome, you are {name}; commands: /nick NAME, /who, /quit"
        );
        self.tell(token, &welcome);
        println!("client {peer} connected");
        self.send(&format!("* {name} joined"), |to| to != token);
    }
    // ANCHOR_END: admit

    // ANCHOR: read
    /// Reads everything a client's socket holds. mio reports a socket when
    /// it *becomes* readable, not for as long as it stays so: stop before
    /// `WouldBlock` and the rest waits, unreported, until they send more.
    fn read_from(&mut self, token: Token) {
        let mut buf = [0; 4096];
        loop {
            let Some(member) = self.members.get_mut(&token) else {
                return; // hung up on while handling an earlier event
            };
            if !member.in_room {
                return; // leaving: we only finish sending to them
            }
            match member.conn.read(&mut buf) {
                // Ok(0) is the end of the stream, as in lesson 04: they hung
                // up. A last line without `\n` still counts.
                Ok(0) => {
                    let last = std::mem::take(&mut member.input);
                    if last.is_empty() || self.handle_line(token, last) {
                        self.leave(token, "disconnected");
                    }
                    return;
                }
                Ok(n) => {
                    member.input.extend_from_slice(&buf[..n]);
                    member.deadline = Instant::now() + self.idle;
                    if !self.handle_lines(token) {
                        return;
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => {
                    self.hang_up(token, &format!("disconnected ({err})"));
                    return;
                }
            }
        }
    }

    /// Handles each whole line in a client's input. Returns `false` once
    /// the client has left, so that we stop reading from them.
    fn handle_lines(&mut self, token: Token) -> bool {
        loop {
            let Some(member) = self.members.get_mut(&token) else {
                return false;
            };
            let Some(end) = member.input.iter().position(|&b| b == b'\n')
            else {
                // No `\n` yet. What we keep must not grow for ever.
                if member.input.len() > MAX_LINE {
                    self.too_long(token);
                    return false;
                }
                return true;
            };
            if end > MAX_LINE {
                self.too_long(token);
                return false;
            }
            let mut line: Vec<u8> = member.input.drain(..=end).collect();
            line.pop(); // the `\n`
            if !self.handle_line(token, line) {
                return false;
            }
        }
    }

    fn too_long(&mut self, token: Token) {
        let error =
            format!("* line too long (max {MAX_LINE} bytes), disconnecting");
        self.tell(token, &error);
        self.leave(token, "sent a line that was too long, disconnected");
    }
    // ANCHOR_END: read

    // ANCHOR: commands
    /// Acts on one line, as lesson 06 does. Returns `false` if they left.
    fn handle_line(&mut self, token: Token, line: Vec<u8>) -> bool {
        let Some(member) = self.members.get(&token) else {
            return false;
        };
        let peer = member.addr;
        let mut roster = Speaker {
            members: &mut self.members,
            me: token,
        };
        let answer = protocol::handle_line(&mut roster, peer, &line);
        for (to, text) in &answer.lines {
            match to {
                To::Me => self.tell(token, text),
                To::Others => self.send(text, |other| other != token),
            }
        }
        if let Some(why) = answer.leave {
            self.leave(token, why);
            return false;
        }
        self.members.contains_key(&token)
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
        let in_room = self.members.values().filter(|m| m.in_room);
        in_room.map(|m| m.name.clone()).collect()
    }

    fn take_name(&mut self, wanted: &str) -> bool {
        let taken = self.members.iter().any(|(&other, member)| {
            other != self.me && member.in_room && member.name == wanted
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
    /// Adds `text` to the output of every member in the room for whom `to`
    /// says yes, and sends what their sockets take now.
    fn send(&mut self, text: &str, to: impl Fn(Token) -> bool) {
        let line = format!("{text}\n");
        let tokens: Vec<Token> = self
            .members
            .iter()
            .filter(|&(&token, member)| member.in_room && to(token))
            .map(|(&token, _)| token)
            .collect();
        for token in tokens {
            self.queue(token, line.as_bytes());
        }
    }

    /// Adds `text` to the output of one member only: answers and notices.
    fn tell(&mut self, token: Token, text: &str) {
        self.queue(token, format!("{text}\n").as_bytes());
    }

    /// Adds bytes to one member's output and sends what their socket takes.
    fn queue(&mut self, token: Token, bytes: &[u8]) {
        let Some(member) = self.members.get_mut(&token) else {
            return;
        };
        if member.output.len() + bytes.len() > MAX_OUTPUT {
            // They have not been reading for a long time. Waiting for them
            // is not an option in an event loop, and neither is keeping
            // everything for them: we hang up.
            self.hang_up(token, "was too slow, disconnected");
            return;
        }
        member.output.extend_from_slice(bytes);
        self.flush(token);
    }
    // ANCHOR_END: send

    // ANCHOR: flush
    /// Writes a member's output until it is empty or their socket is full.
    /// A write may take only part of what we offer (a partial write): the
    /// rest stays in the buffer, and we ask `poll` for "writable" so that
    /// we come back as soon as their socket has space again.
    fn flush(&mut self, token: Token) {
        let Some(member) = self.members.get_mut(&token) else {
            return;
        };
        let mut sent = 0;
        let result = loop {
            if sent == member.output.len() {
                break Ok(());
            }
            match member.conn.write(&member.output[sent..]) {
                Ok(n) => sent += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            }
        };
        member.output.drain(..sent);
        if let Err(err) = result {
            self.hang_up(token, &format!("disconnected ({err})"));
            return;
        }
        let pending = !member.output.is_empty();
        if !pending && !member.in_room {
            // Everything sent to someone who left: now hang up.
            let _ = member.conn.shutdown(Shutdown::Both);
            self.members.remove(&token);
            return;
        }
        if pending != member.wants_write {
            member.wants_write = pending;
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let registry = self.poll.registry();
            if let Err(err) =
                registry.reregister(&mut member.conn, token, interest)
            {
                self.hang_up(token, &format!("disconnected ({err})"));
            }
        }
    }
    // ANCHOR_END: flush

    // ANCHOR: leave
    /// Takes a member out of the room, logs why and tells the others. Their
    /// connection stays open until their last lines are sent, for at most
    /// LINGER; `flush` then hangs up.
    fn leave(&mut self, token: Token, why: &str) {
        let Some(member) = self.members.get_mut(&token) else {
            return;
        };
        if !member.in_room {
            return;
        }
        member.in_room = false;
        member.deadline = Instant::now() + LINGER;
        self.in_room -= 1;
        let (peer, name) = (member.addr, member.name.clone());
        self.wake_no_later_than(Instant::now() + LINGER);
        println!("client {peer} {why}");
        self.send(&format!("* {name} left"), |_| true);
        self.flush(token); // with nothing left to send, this hangs up
    }

    /// Hangs up on a member at once: closing drops what was not sent.
    fn hang_up(&mut self, token: Token, why: &str) {
        let Some(member) = self.members.remove(&token) else {
            return;
        };
        let _ = member.conn.shutdown(Shutdown::Both);
        if member.in_room {
            self.in_room -= 1;
            println!("client {} {why}", member.addr);
            self.send(&format!("* {} left", member.name), |_| true);
        }
    }
    // ANCHOR_END: leave

    // ANCHOR: deadlines
    /// Makes sure that `poll` returns by `at`.
    fn wake_no_later_than(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |next| next.min(at)));
    }

    /// Runs when `poll` returns: deals with every member whose deadline
    /// passed, and finds the next deadline. It looks at every member only
    /// when some deadline is due, not on every event.
    fn check_deadlines(&mut self) {
        let now = Instant::now();
        if self.wake_at.is_none_or(|at| at > now) {
            return;
        }
        let due: Vec<(Token, bool)> = self
            .members
            .iter()
            .filter(|(_, member)| member.deadline <= now)
            .map(|(&token, member)| (token, member.in_room))
            .collect();
        for (token, in_room) in due {
            if in_room {
                let secs = self.idle.as_secs();
                self.tell(
                    token,
                    &format!("* idle for {secs} s, disconnecting"),
                );
                self.leave(
                    token,
                    &format!("was idle for {secs} s, hanging up"),
                );
            } else {
                // Left, and did not take their last lines in time.
                self.hang_up(token, "");
            }
        }
        let deadlines = self.members.values().map(|m| m.deadline);
        self.wake_at = deadlines.chain(self.accept_again_at).min();
    }
    // ANCHOR_END: deadlines

    // ANCHOR: shut-down
    /// Ctrl-C: everybody gets a goodbye and leaves the room at once. The
    /// loop goes on until their last lines are sent, or LINGER passes for
    /// those who do not read; then `event_loop` returns and we exit 0.
    fn shut_down(&mut self) {
        println!("Ctrl-C: telling everybody the server is shutting down");
        let deadline = Instant::now() + LINGER;
        // Out of the room first, so that nobody hears "left" about others.
        for member in self.members.values_mut() {
            member.in_room = false;
            member.deadline = deadline;
        }
        self.in_room = 0;
        let tokens: Vec<Token> = self.members.keys().copied().collect();
        for token in tokens {
            self.queue(token, b"* server shutting down\n");
        }
        self.wake_no_later_than(deadline);
    }
    // ANCHOR_END: shut-down
}
