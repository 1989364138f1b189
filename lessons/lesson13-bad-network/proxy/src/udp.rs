//! `--udp`: the proxy relays datagrams, and loses, doubles and swaps them.
//!
//! UDP has no connections, so the proxy makes its own "calls": the first
//! datagram from a new address opens a session, with a socket of its own
//! towards the server, so that the server's answers find their way back to
//! the right sender. A session whose client has been quiet for a minute
//! gives up its seat when another client needs one.

// ANCHOR: imports
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

use crate::{Faults, Rng, Way, log};
// ANCHOR_END: imports

// ANCHOR: limits
/// The largest datagram there is: 65,535 bytes minus the headers.
const MAX_DATAGRAM: usize = 65_535;

/// How long a reordered datagram waits for the next one to overtake it.
const HOLD: Duration = Duration::from_millis(100);

/// A session whose client sent nothing for this long may be forgotten,
/// when its seat is wanted.
const IDLE: Duration = Duration::from_secs(60);
// ANCHOR_END: limits

// ANCHOR: run
pub async fn run(
    addr: &str,
    to: &str,
    faults: Faults,
    seats: shared::Seats,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(addr)
        .await
        .with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(socket.local_addr()?);
    log!("seed {}", faults.seed);
    log!("forwarding datagrams to {to}, faults: {faults}");
    let server =
        shared::resolve(to).with_context(|| format!("cannot find {to}"))?;
    let relay = Relay {
        listener: Arc::new(socket),
        server,
        faults,
        seats,
        sessions: HashMap::new(),
        count: 0,
    };
    tokio::select! {
        () = relay.receive_loop() => {}
        () = stop => {}
    }
    log!("proxy stopped");
    Ok(())
}
// ANCHOR_END: run

// ANCHOR: session
/// One sender: a socket of its own towards the server, the faults of its
/// datagrams, and a task that carries the server's answers back.
struct Session {
    upstream: Arc<UdpSocket>,
    ups: Faulty,
    heard: Instant,
    answers: AbortHandle,
    _seat: shared::Seat,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.answers.abort(); // the answers task ends with its session
    }
}

struct Relay {
    listener: Arc<UdpSocket>,
    server: SocketAddr,
    faults: Faults,
    seats: shared::Seats,
    sessions: HashMap<SocketAddr, Session>,
    count: u64,
}
// ANCHOR_END: session

// ANCHOR: receive-loop
impl Relay {
    /// Every datagram a client sends arrives here, and goes on through its
    /// session's faults.
    async fn receive_loop(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            // The moment a held-back datagram must go, if one is held.
            let due = self.sessions.values().filter_map(|s| s.ups.due()).min();
            tokio::select! {
                received = self.listener.recv_from(&mut buf) => {
                    // Windows reports an earlier datagram that found
                    // nobody as an error on a later receive: go on.
                    let Ok((n, from)) = received else { continue };
                    let Some(session) = self.session(from).await else {
                        continue;
                    };
                    session.heard = Instant::now();
                    for out in session.ups.pass(buf[..n].to_vec()) {
                        let _ = session.upstream.send(&out).await;
                    }
                }
                () = sleep_until(due.unwrap_or_else(Instant::now)),
                        if due.is_some() => {
                    for session in self.sessions.values_mut() {
                        for out in session.ups.late() {
                            let _ = session.upstream.send(&out).await;
                        }
                    }
                }
            }
        }
    }
    // ANCHOR_END: receive-loop

    // ANCHOR: open
    /// The session of `from`: the one it has, or a new one if a seat is
    /// free (after forgetting the sessions that went quiet).
    async fn session(&mut self, from: SocketAddr) -> Option<&mut Session> {
        if !self.sessions.contains_key(&from) {
            let seat = match self.seats.take() {
                Some(seat) => seat,
                None => {
                    self.forget_quiet();
                    let Some(seat) = self.seats.take() else {
                        let max = self.seats.max();
                        log!(
                            "client {from} turned away: {max} callers already"
                        );
                        return None;
                    };
                    seat
                }
            };
            let upstream = match upstream_socket(self.server).await {
                Ok(upstream) => Arc::new(upstream),
                Err(err) => {
                    log!("client {from}: cannot reach {} ({err})", self.server);
                    return None;
                }
            };
            self.count += 1;
            let number = self.count;
            let up = Way {
                peer: from,
                up: true,
            };
            let down = Way {
                peer: from,
                up: false,
            };
            let downs = Faulty::new(self.faults, number * 2 + 1, down);
            let answers = tokio::spawn(answers(
                Arc::clone(&upstream),
                Arc::clone(&self.listener),
                from,
                downs,
            ));
            let session = Session {
                upstream,
                ups: Faulty::new(self.faults, number * 2, up),
                heard: Instant::now(),
                answers: answers.abort_handle(),
                _seat: seat,
            };
            log!("client {from} connected");
            self.sessions.insert(from, session);
        }
        self.sessions.get_mut(&from)
    }

    /// Drops every session whose client has been quiet for [`IDLE`].
    fn forget_quiet(&mut self) {
        self.sessions.retain(|client, session| {
            let quiet = session.heard.elapsed() >= IDLE;
            if quiet {
                log!(
                    "client {client} quiet for {} s, forgotten",
                    IDLE.as_secs()
                );
            }
            !quiet
        });
    }
}

/// A socket of the session's own, `connect`ed to the server: it receives
/// only the server's datagrams, and `send` needs no address.
async fn upstream_socket(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let any = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(server).await?;
    Ok(socket)
}
// ANCHOR_END: open

// ANCHOR: answers
/// The server's answers to one client, back through the faults.
async fn answers(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    mut downs: Faulty,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let due = downs.due();
        let out = tokio::select! {
            received = upstream.recv(&mut buf) => match received {
                Ok(n) => downs.pass(buf[..n].to_vec()),
                // An earlier datagram found no server there: go on.
                Err(_) => continue,
            },
            () = sleep_until(due.unwrap_or_else(Instant::now)),
                    if due.is_some() => downs.late(),
        };
        for datagram in out {
            let _ = listener.send_to(&datagram, client).await;
        }
    }
}
// ANCHOR_END: answers

// ANCHOR: faulty
/// The faults of one direction of one session.
struct Faulty {
    faults: Faults,
    rng: Rng,
    way: Way,
    /// How many datagrams went this way: each is named by its number.
    count: u64,
    /// The datagram held back to be overtaken, and when it must go anyway.
    held: Option<(Vec<Vec<u8>>, Instant)>,
}

impl Faulty {
    fn new(faults: Faults, stream: u64, way: Way) -> Faulty {
        let rng = Rng::stream(faults.seed, stream);
        Faulty {
            faults,
            rng,
            way,
            count: 0,
            held: None,
        }
    }

    /// What to send, in order, now that `datagram` has arrived.
    fn pass(&mut self, datagram: Vec<u8>) -> Vec<Vec<u8>> {
        self.count += 1;
        let (n, way) = (self.count, self.way);
        // Three choices for every datagram, always drawn, so the choices
        // for datagram 7 do not depend on what happened to datagram 6.
        let lose = self.rng.chance(self.faults.drop);
        let twice = self.rng.chance(self.faults.duplicate);
        let hold = self.rng.chance(self.faults.reorder);
        // Whatever was held back goes after this one: it was overtaken.
        let overtaken = self.held.take().map(|(held, _)| held);
        let mut out = Vec::new();
        if lose {
            log!("{way}: datagram {n} dropped");
        } else {
            let copies = if twice { 2 } else { 1 };
            if twice {
                log!("{way}: datagram {n} sent twice");
            }
            let mine = vec![datagram; copies];
            if hold && overtaken.is_none() {
                log!("{way}: datagram {n} held back");
                self.held = Some((mine, Instant::now() + HOLD));
            } else {
                out.extend(mine);
            }
        }
        out.extend(overtaken.into_iter().flatten());
        out
    }

    /// When the held-back datagram must go, if one is held.
    fn due(&self) -> Option<Instant> {
        self.held.as_ref().map(|&(_, due)| due)
    }

    /// The held-back datagram, if its time is up: nothing overtook it.
    fn late(&mut self) -> Vec<Vec<u8>> {
        match self.due() {
            Some(due) if due <= Instant::now() => {
                self.held.take().map(|(held, _)| held).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}
// ANCHOR_END: faulty
