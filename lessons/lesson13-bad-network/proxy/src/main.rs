//! Lesson 13 proxy: a bad network on your desk.
//!
//! It stands between a client and a server. For every caller it opens a
//! second connection, to the server, and copies bytes both ways. On the way
//! it can do what real networks do: cut the stream into small pieces, hold
//! them back, pass them on slowly, close or reset the call, or go silent.
//! With `--udp` it relays datagrams instead, and can lose, double and swap
//! them. Every random choice comes from one seed, so a run can be replayed.

// ANCHOR: imports
use std::fmt;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use clap::builder::RangedU64ValueParser;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

mod udp;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 13 proxy: forwards TCP connections (or, with --udp, datagrams) to
/// another server, and on the way does what bad networks do, as you ask:
/// split, delay, slow down, cut, reset, stall; over UDP drop, duplicate,
/// reorder. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on: IP:PORT, [IPv6]:PORT or localhost:PORT (port 0
    /// lets the system pick)
    #[arg(default_value = "127.0.0.1:9013", value_parser = shared::parse_addr)]
    addr: String,

    /// The server to forward to, e.g. 127.0.0.1:9004 (required)
    #[arg(long, value_name = "UPSTREAM", value_parser = shared::parse_addr)]
    to: Option<String>,

    /// Pass the bytes on in pieces of 1 to N bytes, each length random
    #[arg(long, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    split: Option<usize>,

    /// Hold each piece this many milliseconds before passing it on
    #[arg(long, value_name = "MS")]
    delay: Option<u64>,

    /// Pass at most this many bytes per second, each way: a slow link
    #[arg(long, value_name = "BYTES_PER_SEC",
          value_parser = RangedU64ValueParser::<u64>::new().range(1..))]
    rate: Option<u64>,

    /// Close both sides politely (a FIN each) once this many bytes have
    /// passed, both ways together
    #[arg(long, value_name = "BYTES", group = "ending")]
    cut_after: Option<u64>,

    /// Reset both sides (an RST each) once this many bytes have passed
    #[arg(long, value_name = "BYTES", group = "ending")]
    reset_after: Option<u64>,

    /// Stop passing anything on once this many bytes have passed, but keep
    /// both connections open: a peer that died without a word
    #[arg(long, value_name = "BYTES", group = "ending")]
    stall_after: Option<u64>,

    /// Relay UDP datagrams instead of TCP connections
    #[arg(long, conflicts_with_all = ["split", "delay", "rate", "ending"])]
    udp: bool,

    /// (UDP) Lose this percentage of the datagrams
    #[arg(long, value_name = "PCT", value_parser = percent)]
    drop: Option<u64>,

    /// (UDP) Send this percentage of the datagrams twice
    #[arg(long, value_name = "PCT", value_parser = percent)]
    duplicate: Option<u64>,

    /// (UDP) Hold this percentage of the datagrams back until the next one
    /// has gone
    #[arg(long, value_name = "PCT", value_parser = percent)]
    reorder: Option<u64>,

    /// The seed of every random choice; the same seed, the same choices.
    /// Without it one is picked, and printed
    #[arg(long, value_name = "S")]
    seed: Option<u64>,

    /// How many callers may be served at once; the next one is turned away
    #[arg(long, default_value_t = 100,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,
}

fn percent(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(pct) if pct <= 100 => Ok(pct),
        _ => Err("expected a percentage from 0 to 100".to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    let to = match check(&args) {
        Ok(to) => to,
        Err(problem) => {
            eprintln!("error: {problem} (see --help)");
            return ExitCode::from(2);
        }
    };
    shared::exit_status(run(args, to).await)
}

/// What clap cannot say in one line: `--to` is missing, or a UDP fault
/// was asked for without `--udp`. Returns the upstream address.
fn check(args: &Args) -> Result<String, String> {
    let udp_only = [args.drop, args.duplicate, args.reorder];
    if !args.udp && udp_only.iter().any(Option::is_some) {
        return Err("--drop, --duplicate and --reorder need --udp".into());
    }
    args.to.clone().ok_or_else(|| {
        "--to UPSTREAM is missing: the server to forward to, \
         e.g. --to 127.0.0.1:9004"
            .into()
    })
}
// ANCHOR_END: args

// ANCHOR: faults
/// The faults asked for on the command line, shared by every caller.
#[derive(Clone, Copy)]
struct Faults {
    split: Option<usize>,
    delay: Option<Duration>,
    rate: Option<u64>,
    /// How the call ends early, and after how many bytes.
    ending: Option<(Ending, u64)>,
    drop: u64,
    duplicate: u64,
    reorder: u64,
    seed: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Ending {
    Cut,
    Reset,
    Stall,
}

impl Faults {
    fn new(args: &Args) -> Faults {
        let ending = match (args.cut_after, args.reset_after, args.stall_after)
        {
            (Some(n), _, _) => Some((Ending::Cut, n)),
            (_, Some(n), _) => Some((Ending::Reset, n)),
            (_, _, Some(n)) => Some((Ending::Stall, n)),
            _ => None,
        };
        Faults {
            split: args.split,
            delay: args.delay.map(Duration::from_millis),
            rate: args.rate,
            ending,
            drop: args.drop.unwrap_or(0),
            duplicate: args.duplicate.unwrap_or(0),
            reorder: args.reorder.unwrap_or(0),
            seed: args.seed.unwrap_or_else(any_seed),
        }
    }

    /// Split, delay and rate shape every piece; then each piece is logged.
    fn shaping(&self) -> bool {
        self.split.is_some() || self.delay.is_some() || self.rate.is_some()
    }
}

/// The faults in words, for the third line the proxy prints.
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        if let Some(n) = self.split {
            words.push(format!("split {n}"));
        }
        if let Some(delay) = self.delay {
            words.push(format!("delay {} ms", delay.as_millis()));
        }
        if let Some(rate) = self.rate {
            words.push(format!("rate {rate} bytes/s"));
        }
        match self.ending {
            Some((Ending::Cut, n)) => words.push(format!("cut after {n}")),
            Some((Ending::Reset, n)) => words.push(format!("reset after {n}")),
            Some((Ending::Stall, n)) => words.push(format!("stall after {n}")),
            None => {}
        }
        for (name, pct) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if pct > 0 {
                words.push(format!("{name} {pct}%"));
            }
        }
        if words.is_empty() {
            words.push("none".to_string());
        }
        write!(f, "{}", words.join(", "))
    }
}
// ANCHOR_END: faults

// ANCHOR: rng
/// A seed when none was given: the clock's nanoseconds and our process id.
fn any_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng(nanos ^ u64::from(std::process::id())).next() % 1_000_000
}

/// SplitMix64, a tiny random generator: the same seed gives the same
/// numbers on every system, and the Python twin has the same few lines.
struct Rng(u64);

impl Rng {
    /// The generator of one stream of choices: one direction of one call.
    /// Each has its own, so that what happens on one call does not change
    /// the choices made on another.
    fn stream(seed: u64, number: u64) -> Rng {
        let mut mixer = Rng(seed ^ number.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng(mixer.next())
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number from 0 to `n - 1`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `pct` times in a hundred.
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}
// ANCHOR_END: rng

// ANCHOR: log
/// One log line on stdout. `println!` would panic if stdout were closed;
/// a proxy in front of somebody else's server should not die of that.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use log;
// ANCHOR_END: log

// ANCHOR: run
/// How long the server may take to answer our call for a caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a stream we read at once, per direction and caller.
const BUFFER: usize = 16 * 1024;

/// How far behind `--rate` may fall and still catch up.
const RATE_SLACK: Duration = Duration::from_millis(100);

async fn run(args: Args, to: String) -> anyhow::Result<()> {
    let faults = Faults::new(&args);
    let seats = shared::Seats::new(args.max_clients);
    // Ready for Ctrl-C before anybody can know our address: a test (or a
    // script) may stop us the moment it reads the listening line.
    let stop = stop_signal().context("could not listen for Ctrl-C")?;
    if args.udp {
        return udp::run(&args.addr, &to, faults, seats, stop).await;
    }
    let listener = TcpListener::bind(&args.addr)
        .await
        .with_context(|| shared::cannot_listen(&args.addr))?;
    shared::print_listening(listener.local_addr()?);
    log!("seed {}", faults.seed);
    log!("forwarding to {to}, faults: {faults}");
    // Every call's task, so that on Ctrl-C we can end them all.
    let mut calls = JoinSet::new();
    tokio::select! {
        () = accept_loop(&listener, &to, faults, seats, &mut calls) => {}
        () = stop => {}
    }
    // Stop every call (dropping its sockets closes them) and wait until
    // they are gone, so that this is the last line.
    calls.shutdown().await;
    log!("proxy stopped");
    Ok(())
}

/// Ctrl-C, or on Unix also SIGTERM, which `kill` sends. The handlers are
/// set up now, when this is called; the future it returns waits for them.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        let mut ctrl_c = tokio::signal::windows::ctrl_c()?;
        Ok(async move {
            ctrl_c.recv().await;
        })
    }
}
// ANCHOR_END: run

// ANCHOR: accept-loop
async fn accept_loop(
    listener: &TcpListener,
    to: &str,
    faults: Faults,
    seats: shared::Seats,
    calls: &mut JoinSet<()>,
) {
    let mut callers = 0;
    let mut failures = 0;
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(call) => call,
            Err(err) => {
                // Usually "too many open files". Say it once, not ten
                // times a second, and say when it is over.
                if failures == 0 {
                    log!("accept failed: {err}; trying again every 100 ms");
                }
                failures += 1;
                sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if failures > 0 {
            log!("accept works again after {failures} failures");
            failures = 0;
        }
        callers += 1;
        let Some(seat) = seats.take() else {
            // A proxy cannot say why in the caller's protocol: it hangs up.
            log!("client {peer} turned away: {} callers already", seats.max());
            continue;
        };
        // Forget the calls that have ended, so the set stays small.
        while calls.try_join_next().is_some() {}
        let to = to.to_string();
        calls.spawn(async move {
            relay(client, peer, &to, faults, callers).await;
            drop(seat);
        });
    }
}
// ANCHOR_END: accept-loop

// ANCHOR: relay
/// One caller: a second connection to the server, bytes copied both ways
/// until both sides have finished, then whatever fault ended the call.
async fn relay(
    mut client: TcpStream,
    peer: SocketAddr,
    to: &str,
    faults: Faults,
    number: u64,
) {
    log!("client {peer} connected");
    let connecting = timeout(CONNECT_TIMEOUT, TcpStream::connect(to));
    let mut server = match connecting.await {
        Ok(Ok(server)) => server,
        // A refusal is a reset on the wire, and the caller gets one too.
        Ok(Err(err)) => {
            reset(&client);
            log!("client {peer}: cannot reach {to} ({err}), resetting");
            return;
        }
        Err(_) => {
            reset(&client);
            log!("client {peer}: {to} did not answer, resetting");
            return;
        }
    };
    // Each piece leaves at once as a packet of its own: no Nagle (lesson
    // 07) joining our small pieces back together.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);

    let passed = AtomicU64::new(0);
    let flow = {
        // Two halves of each socket: one direction reads the client and
        // writes the server, the other the opposite.
        let (from_client, to_client) = client.split();
        let (from_server, to_server) = server.split();
        let up = Way { peer, up: true };
        let down = Way { peer, up: false };
        let shared = Pump {
            faults,
            passed: &passed,
            number,
            write_failed: AtomicBool::new(false),
        };
        both(
            shared.pump(from_client, to_server, up),
            shared.pump(from_server, to_client, down),
        )
        .await
    }; // the halves are gone here: the sockets are ours again
    finish(flow, client, server, peer, passed.load(Ordering::Relaxed)).await;
}
// ANCHOR_END: relay

// ANCHOR: both
/// What one direction's copying ended with.
enum Flow {
    /// End of stream, passed on as a half-close.
    Done,
    /// The client (`true`) or the server (`false`) failed: a reset.
    /// `writing`: we found out by writing to it, not by reading from it.
    Broken { by_client: bool, writing: bool },
    /// A fault of ours: cut, reset or stall.
    Fault(Ending),
}

/// Runs both directions until both are done, or until one of them ends
/// the call for both: a reset, or a fault of ours. The other direction is
/// dropped then, wherever it was waiting, with one exception: a side that
/// failed while we wrote to it may have sent bytes before it went (its
/// last answer, say), and the other direction is still passing them on.
/// That direction reads from the side that failed, so it ends soon; we let
/// it, for up to `GOODBYE`.
async fn both(
    up: impl Future<Output = Flow>,
    down: impl Future<Output = Flow>,
) -> Flow {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    loop {
        let flow = tokio::select! {
            flow = &mut up, if !up_done => { up_done = true; flow }
            flow = &mut down, if !down_done => { down_done = true; flow }
        };
        match flow {
            Flow::Done if up_done && down_done => return Flow::Done,
            Flow::Done => continue, // a half-close: the other way goes on
            Flow::Broken { writing: true, .. } if !(up_done && down_done) => {
                let other = async {
                    match up_done {
                        true => (&mut down).await,
                        false => (&mut up).await,
                    }
                };
                let _ = timeout(GOODBYE, other).await;
                return flow;
            }
            ending => return ending,
        }
    }
}
// ANCHOR_END: both

// ANCHOR: way
/// One direction of one call, as the log shows it: `client A -> server`
/// for what the client sends, `client A <- server` for the replies.
#[derive(Clone, Copy)]
struct Way {
    peer: SocketAddr,
    up: bool,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = if self.up { "->" } else { "<-" };
        write!(f, "client {} {arrow} server", self.peer)
    }
}
// ANCHOR_END: way

// ANCHOR: pump
/// What both directions of one call share.
struct Pump<'a> {
    faults: Faults,
    /// Bytes passed on so far, both ways together, for `--*-after`.
    passed: &'a AtomicU64,
    number: u64,
    /// A write failed: that side is gone, and its end of stream, when the
    /// other direction reads it, is the same failure, not a half-close.
    write_failed: AtomicBool,
}

impl Pump<'_> {
    /// Copies one direction: read what has arrived, pass it on in pieces
    /// shaped by the faults, and at the end of the stream half-close.
    async fn pump(
        &self,
        mut from: ReadHalf<'_>,
        mut to: WriteHalf<'_>,
        way: Way,
    ) -> Flow {
        let faults = self.faults;
        let stream = self.number * 2 + u64::from(!way.up);
        let mut rng = Rng::stream(faults.seed, stream);
        let mut buf = vec![0u8; BUFFER];
        let mut next_slot = Instant::now(); // when --rate lets us send again
        if let Some(ending) = self.ended() {
            return Flow::Fault(ending); // `--cut-after 0`, say
        }
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) if self.write_failed.load(Ordering::Relaxed) => {
                    return Flow::Broken {
                        by_client: way.up,
                        writing: false,
                    };
                }
                Ok(0) => {
                    // End of stream: pass it on as what it is, a
                    // half-close. The other way may still have bytes.
                    if to.shutdown().await.is_err() {
                        self.write_failed.store(true, Ordering::Relaxed);
                        return Flow::Broken {
                            by_client: !way.up,
                            writing: true,
                        };
                    }
                    log!("{way}: end of stream, passed on");
                    return Flow::Done;
                }
                Ok(n) => n,
                Err(_) => {
                    return Flow::Broken {
                        by_client: way.up,
                        writing: false,
                    };
                }
            };
            // ANCHOR_END: pump
            // ANCHOR: pieces
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                let mut len = rest.len();
                if let Some(max) = faults.split {
                    len = len.min(1 + rng.below(max as u64) as usize);
                }
                if let Some(delay) = faults.delay {
                    sleep(delay).await;
                }
                if let Some(rate) = faults.rate {
                    // At most a tenth of a second's worth at a time, sent
                    // when the previous piece's time is up. A timer that
                    // woke late is made good by the next pieces, for up to
                    // a tenth of a second; an idle link saves up no more.
                    len = len.min((rate / 10).max(1) as usize);
                    let now = Instant::now();
                    let slack = now.checked_sub(RATE_SLACK).unwrap_or(now);
                    next_slot = next_slot.max(slack);
                    sleep_until(next_slot).await;
                    let secs = len as f64 / rate as f64;
                    next_slot += Duration::from_secs_f64(secs);
                }
                let (len, ending) = self.take(len);
                if len > 0 {
                    if to.write_all(&rest[..len]).await.is_err() {
                        self.write_failed.store(true, Ordering::Relaxed);
                        return Flow::Broken {
                            by_client: !way.up,
                            writing: true,
                        };
                    }
                    if faults.shaping() {
                        log!("{way}: {}", bytes(len as u64));
                    }
                }
                if let Some(ending) = ending {
                    return Flow::Fault(ending);
                }
                rest = &rest[len..];
            }
        }
    }
    // ANCHOR_END: pieces

    // ANCHOR: budget
    /// Takes up to `want` bytes of what may still pass before the ending
    /// fault, and says whether that fault is due now.
    fn take(&self, want: usize) -> (usize, Option<Ending>) {
        let Some((ending, after)) = self.faults.ending else {
            return (want, None);
        };
        let mut granted = 0;
        let _ = self.passed.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |passed| {
                granted = after.saturating_sub(passed).min(want as u64);
                Some(passed + granted)
            },
        );
        (granted as usize, self.ended().filter(|&e| e == ending))
    }

    /// The ending fault, if its bytes have all passed.
    fn ended(&self) -> Option<Ending> {
        let (ending, after) = self.faults.ending?;
        (self.passed.load(Ordering::Relaxed) >= after).then_some(ending)
    }
}
// ANCHOR_END: budget

// ANCHOR: finish
/// How long a cut call may take to hang up before we close anyway.
const GOODBYE: Duration = Duration::from_secs(10);

/// The end of a call, as its flow says.
async fn finish(
    flow: Flow,
    mut client: TcpStream,
    mut server: TcpStream,
    peer: SocketAddr,
    passed: u64,
) {
    match flow {
        // Both sides half-closed; dropping the sockets closes them.
        Flow::Done => {}
        Flow::Broken { by_client, .. } => {
            // One side reset (or failed): the other learns it the same way.
            let (who, other) = match by_client {
                true => ("client", &server),
                false => ("server", &client),
            };
            reset(other);
            log!("client {peer}: the {who} reset the connection, passed on");
        }
        Flow::Fault(Ending::Reset) => {
            reset(&client);
            reset(&server);
            log!("client {peer}: reset after {}", bytes(passed));
        }
        Flow::Fault(Ending::Cut) => {
            log!("client {peer}: cut after {}", bytes(passed));
            // A FIN each way. Then read what is still on its way until
            // both hang up: closing with unread bytes would send an RST,
            // and this fault is the polite one.
            let _ = client.shutdown().await;
            let _ = server.shutdown().await;
            let drained =
                async { tokio::join!(drain(&mut client), drain(&mut server)) };
            let _ = timeout(GOODBYE, drained).await;
        }
        Flow::Fault(Ending::Stall) => {
            log!("client {peer}: stalled after {}", bytes(passed));
            // Nothing more is passed on, either way, and nobody is told.
            // We still read, and throw away, to see when each side gives
            // up: the call ends only when both have.
            tokio::join!(drain(&mut client), drain(&mut server));
        }
    }
    log!("client {peer} disconnected");
}

/// `1 byte`, `2 bytes`.
fn bytes(n: u64) -> String {
    match n {
        1 => "1 byte".to_string(),
        n => format!("{n} bytes"),
    }
}

/// Reads and throws away until end of stream or an error.
async fn drain(mut side: impl AsyncRead + Unpin) {
    let mut buf = [0u8; 4096];
    while let Ok(1..) = side.read(&mut buf).await {}
}

/// Makes the coming close of `stream` an RST instead of a FIN: SO_LINGER
/// with a time of zero (lesson 04). Failing to set it leaves a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
// ANCHOR_END: finish
