//! The test's own chat client for lesson 06's protocol (and every server that
//! speaks it): a plain socket whose lines are read with the socket's read
//! timeout, so no wait can hang the test. Being the test's own, it can do
//! what a real client never would: stop reading, reset, send garbage.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::{TIMEOUT, connect};

/// The longest line the chat server takes, in bytes (its `MAX_LINE`).
pub const MAX_LINE: usize = 8192;

/// The longest line a chat client takes from the server, in bytes (its
/// `MAX_SERVER_LINE`); a longer one ends the client with an error.
pub const MAX_SERVER_LINE: usize = 1024 * 1024;

/// What the chat server says before it hangs up on a longer line.
pub const TOO_LONG: &str = "* line too long (max 8192 bytes), disconnecting";

/// How many lines the chat servers queue for one member (`QUEUE_LINES` of
/// lesson06-protocol): lesson 06 hangs up on a member whose queue is full,
/// lessons 10 and 11 stop reading the senders until there is space.
pub const QUEUE_LINES: usize = 256;

/// A chat client played by the test.
pub struct Chatter {
    /// The lines from the server.
    pub input: BufReader<TcpStream>,
    /// Our side of the connection, to write to (a clone of the same socket).
    pub output: TcpStream,
    /// Our address, which the server logs and shows.
    pub addr: SocketAddr,
    /// The name the room knows us by: our address until we choose one.
    pub name: String,
}

impl Chatter {
    /// Connects to the room and reads the welcome line: after it, the server
    /// has us in its room.
    pub fn join(server: SocketAddr) -> Result<Chatter> {
        Chatter::over(connect(server)?)
    }

    /// Like `join`, over a connection the test made itself.
    pub fn over(stream: TcpStream) -> Result<Chatter> {
        let mut chatter = Chatter::connected(stream)?;
        let first = chatter.line()?;
        chatter.check_welcome(&first)?;
        Ok(chatter)
    }

    /// Joins as soon as there is room. Right after an attack the room may
    /// still be full of attackers whose threads have not yet taken them out:
    /// then the server says `* server full` and hangs up, and we call again.
    pub fn join_when_there_is_room(server: SocketAddr) -> Result<Chatter> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut chatter = Chatter::connected(connect(server)?)?;
            let first = chatter.line()?;
            if first == "* server full" && Instant::now() < deadline {
                continue;
            }
            chatter.check_welcome(&first)?;
            return Ok(chatter);
        }
    }

    /// A chatter on `stream`, before the welcome is read.
    fn connected(stream: TcpStream) -> Result<Chatter> {
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let addr = stream.local_addr()?;
        let output = stream.try_clone()?;
        Ok(Chatter {
            input: BufReader::new(stream),
            output,
            addr,
            name: addr.to_string(),
        })
    }

    /// Checks the welcome line, which names us by our address. Through
    /// chaos mode's proxy the server sees the proxy's address instead: then
    /// that is our address and name, as the server knows them.
    fn check_welcome(&mut self, first: &str) -> Result<()> {
        let expected = format!("* welcome, you are {};", self.name);
        if first.starts_with(&expected) {
            return Ok(());
        }
        let seen = first
            .strip_prefix("* welcome, you are ")
            .and_then(|rest| rest.split_once(';'))
            .and_then(|(name, _)| name.parse::<SocketAddr>().ok());
        match seen {
            Some(addr) if crate::chaos::seed().is_some() => {
                self.addr = addr;
                self.name = addr.to_string();
                Ok(())
            }
            _ => bail!("expected the welcome line, got {first:?}"),
        }
    }

    /// Joins and takes `name`.
    pub fn named(server: SocketAddr, name: &str) -> Result<Chatter> {
        Chatter::join(server)?.renamed(name)
    }

    /// Takes `name`, skipping any room news until the server confirms it.
    pub fn renamed(mut self, name: &str) -> Result<Chatter> {
        self.say(&format!("/nick {name}"))?;
        self.wait_for(&format!("* you are now {name}"))?;
        self.name = name.to_string();
        Ok(self)
    }

    /// Says `/nick name` and checks that the very next line confirms it.
    pub fn nick(&mut self, name: &str) -> Result<()> {
        self.say(&format!("/nick {name}"))?;
        self.expect(&format!("* you are now {name}"))?;
        self.name = name.to_string();
        Ok(())
    }

    /// Sends `text` as one line.
    pub fn say(&mut self, text: &str) -> Result<()> {
        self.send(format!("{text}\n").as_bytes())
    }

    /// Sends raw bytes, newline or not.
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.output
            .write_all(bytes)
            .context("sending to the chat server")
    }

    /// The next line, without its `\n`. Whatever a client sent, the server
    /// only ever sends valid UTF-8: anything else fails the test.
    pub fn line(&mut self) -> Result<String> {
        read_line(&mut self.input)?.context("the server closed the connection")
    }

    /// Checks that the very next line is `expected`.
    pub fn expect(&mut self, expected: &str) -> Result<()> {
        let line = self.line()?;
        ensure!(line == expected, "expected {expected:?}, got {line:?}");
        Ok(())
    }

    /// Reads until the line `expected`; returns the lines before it.
    pub fn wait_for(&mut self, expected: &str) -> Result<Vec<String>> {
        let deadline = Instant::now() + TIMEOUT;
        let mut before = Vec::new();
        while Instant::now() < deadline {
            let line = self
                .line()
                .with_context(|| format!("waiting for {expected:?} after {before:?}"))?;
            if line == expected {
                return Ok(before);
            }
            before.push(line);
        }
        bail!("no {expected:?} within {TIMEOUT:?}; got {before:?}")
    }

    /// Asks `/who` and returns the answer, skipping other lines.
    pub fn who(&mut self) -> Result<String> {
        self.say("/who")?;
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            let line = self.line()?;
            if line.starts_with("* ") && line.contains(" in the room: ") {
                return Ok(line);
            }
        }
        bail!("no answer to /who within {TIMEOUT:?}")
    }

    /// Reads until the server hangs up (end of stream, or a reset when it
    /// closed with our bytes unread) and returns the lines that came first.
    pub fn lines_until_closed(&mut self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            match self.input.read_until(b'\n', &mut raw) {
                Ok(0) => return Ok(lines),
                Ok(_) => lines.push(String::from_utf8_lossy(&raw).trim_end().to_string()),
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Ok(lines),
                Err(err) => return Err(err).context("waiting for the server to hang up"),
            }
        }
    }
}

/// The next line from a chat server without its `\n`, or `None` at the end of
/// the stream. A line that is cut off or not UTF-8 fails.
pub fn read_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut raw = Vec::new();
    let n = input
        .read_until(b'\n', &mut raw)
        .context("waiting for a line from the chat server")?;
    if n == 0 {
        return Ok(None);
    }
    ensure!(
        raw.last() == Some(&b'\n'),
        "the stream ended inside a line, {} bytes without a \\n: {:?}",
        raw.len(),
        String::from_utf8_lossy(&raw[..raw.len().min(100)])
    );
    raw.pop();
    String::from_utf8(raw)
        .map(Some)
        .map_err(|err| anyhow!("the server sent invalid UTF-8: {err}"))
}
