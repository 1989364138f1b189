//! The echo load: C clients at once, each in a closed loop (send one message,
//! wait for its whole reply, check it, send the next).
//!
//! The clients are tasks on a single-threaded tokio runtime, so the generator
//! uses about one core however many clients it plays, and leaves the other
//! core of a 2-core machine to the server.
//!
//! Every reply is checked byte for byte against the upper-cased message.
//! TCP keeps no message boundaries, so a TCP client reads exactly as many
//! bytes as it sent; over UDP, one datagram is one message.
//!
//! Nothing here can hang: every connect, read and write runs against the
//! run's deadline, and a client still waiting when it comes simply stops.
//! With a sequential server that is the normal case for all clients but the
//! one being served: they are reported as "waiting", not as errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout_at;

use crate::procs;
use crate::stats::{Latencies, Percentiles};

/// How long a UDP client waits for one reply before it counts the datagram
/// as lost and sends the next one.
const UDP_WAIT: Duration = Duration::from_millis(500);

/// One load run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Shown in progress lines.
    pub label: String,
    pub addr: SocketAddr,
    pub udp: bool,
    /// Send every message as a lesson 07 frame: a 4-byte big-endian length
    /// first (TCP only); the reply is one frame too.
    pub framed: bool,
    /// Fetch `GET /` over a new connection for every "message" (lesson 09):
    /// the answer must be a 200 whose body is as long as its Content-Length
    /// says and holds the page's words.
    pub http: bool,
    pub clients: usize,
    /// Bytes per message.
    pub size: usize,
    /// How long the run lasts; with `messages`, the longest it may last.
    pub duration: Duration,
    /// Messages per client; `None`: send until the time is up.
    pub messages: Option<u64>,
    /// The server's process, to sample its memory and threads.
    pub pid: Option<u32>,
    /// Print a progress line every second (on stderr).
    pub progress: bool,
}

/// What one run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunStats {
    pub clients: usize,
    pub size: usize,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Replies received and checked.
    pub messages: u64,
    pub msgs_per_s: f64,
    /// Payload megabytes (10^6 bytes) echoed per second, one way.
    pub mb_per_s: f64,
    /// Round-trip time of one message, from the start of its write to the
    /// last byte of its reply.
    pub latency: Option<Percentiles>,
    /// Clients that received at least one reply.
    pub served: usize,
    /// Clients that sent all their messages (with a message count).
    pub finished: usize,
    /// Clients whose connect had not completed when the time was up.
    pub never_connected: usize,
    /// Clients that were connected but still waiting for their first reply
    /// when the time was up (a sequential server's queue).
    pub waiting: usize,
    /// UDP: datagrams with no reply within the wait, and replies that came too late.
    pub lost: u64,
    pub late: u64,
    /// Replies whose bytes were not the upper-cased message.
    pub wrong: u64,
    /// Connections that ended in an error (reset, closed early, refused).
    pub broken: usize,
    pub first_error: Option<String>,
    /// Per client, sorted: milliseconds from the start of the run until its
    /// first reply (`None`: never got one).
    pub first_reply_ms: Vec<Option<f64>>,
    /// Per client, sorted: milliseconds until it had all its replies.
    pub done_ms: Vec<Option<f64>>,
    /// The server's largest resident memory and thread count seen during the run.
    pub server_rss_kb: Option<u64>,
    pub server_threads: Option<u64>,
    /// CPU seconds the server used during the run, in the program itself
    /// (user) and in the kernel (system), and what the load generator used
    /// (from `/proc`, in steps of 10 ms).
    pub server_user_s: Option<f64>,
    pub server_system_s: Option<f64>,
    pub loadgen_cpu_s: Option<f64>,
}

/// The single-threaded runtime the generator's clients run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the tokio runtime")
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    latencies: Latencies,
    first_reply: Option<Duration>,
    done: Option<Duration>,
    never_connected: bool,
    waiting: bool,
    lost: u64,
    late: u64,
    wrong: u64,
    error: Option<String>,
}

/// Runs `spec` and returns what it measured.
pub async fn run(spec: &Spec) -> anyhow::Result<RunStats> {
    let server_cpu = spec.pid.and_then(procs::cpu_times);
    let own_cpu = procs::cpu_seconds(0);
    let start = Instant::now();
    let end = start + spec.duration;
    let replies = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(spec.clients);
    for id in 0..spec.clients {
        let spec = spec.clone();
        let replies = Arc::clone(&replies);
        tasks.push(tokio::spawn(async move {
            if spec.udp {
                udp_client(id, &spec, start, end, &replies).await
            } else if spec.http {
                http_client(&spec, start, end, &replies).await
            } else {
                tcp_client(id, &spec, start, end, &replies).await
            }
        }));
    }
    let peak = Arc::new(procs::Peak::default());
    let watcher = tokio::spawn(watch(
        spec.label.clone(),
        spec.pid,
        Arc::clone(&peak),
        spec.progress,
        start,
        spec.duration,
        Arc::clone(&replies),
    ));
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.context("a client task failed")?);
    }
    let finished_at = Instant::now();
    watcher.abort();
    let server_cpu = spec
        .pid
        .and_then(procs::cpu_times)
        .zip(server_cpu)
        .map(|(after, before)| (after.0 - before.0, after.1 - before.1));
    let loadgen_cpu_s = procs::cpu_seconds(0)
        .zip(own_cpu)
        .map(|(after, before)| after - before);
    // With a message count the window ends when the last client is done;
    // otherwise it is the run's length.
    let window = if spec.messages.is_some() {
        finished_at.min(end) - start
    } else {
        spec.duration
    };
    let mut stats = summarise(spec, window, results);
    stats.server_user_s = server_cpu.map(|c| c.0);
    stats.server_system_s = server_cpu.map(|c| c.1);
    stats.loadgen_cpu_s = loadgen_cpu_s;
    if spec.pid.is_some() {
        (stats.server_rss_kb, stats.server_threads) = peak.get();
    }
    Ok(stats)
}

/// Prints a progress line every second and samples the server's memory and
/// threads every 100 ms, until the run aborts it.
async fn watch(
    label: String,
    pid: Option<u32>,
    peak: Arc<procs::Peak>,
    progress: bool,
    start: Instant,
    length: Duration,
    replies: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_print = start;
    let mut last_count = 0;
    loop {
        tick.tick().await;
        if let Some(pid) = pid {
            peak.sample(pid);
        }
        let now = Instant::now();
        if progress && now - last_print >= Duration::from_secs(1) {
            let count = replies.load(Ordering::Relaxed);
            let rate = (count - last_count) as f64 / (now - last_print).as_secs_f64();
            eprintln!(
                "  {label}: {:.0}/{:.0} s, {} replies, {} msgs/s",
                (now - start).as_secs_f64(),
                length.as_secs_f64(),
                crate::render::thousands(count as f64),
                crate::render::thousands(rate)
            );
            last_print = now;
            last_count = count;
        }
    }
}

/// The bytes of message `seq` of client `id`: lower-case letters and digits,
/// shifted every message, so a reply to an old message or to another client
/// cannot pass for the right one. For UDP the first bytes carry the message
/// number in digits, so a late reply can be recognised.
fn fill(message: &mut [u8], id: usize, seq: u64) {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let shift = (id as u64).wrapping_mul(7).wrapping_add(seq) as usize;
    for (i, byte) in message.iter_mut().enumerate() {
        *byte = ALPHABET[(i + shift) % ALPHABET.len()];
    }
    let digits = format!("{seq:010}");
    let n = message.len().min(10);
    message[..n].copy_from_slice(&digits.as_bytes()[10 - n..]);
}

async fn tcp_client(
    id: usize,
    spec: &Spec,
    start: Instant,
    end: Instant,
    replies: &AtomicU64,
) -> ClientResult {
    let mut result = ClientResult::default();
    let mut stream = match timeout_at(end.into(), TcpStream::connect(spec.addr)).await {
        Err(_) => {
            // Still in the server's queue, or its SYN was dropped because the
            // queue was full and the kernel is retrying: it never got in.
            result.never_connected = true;
            return result;
        }
        Ok(Err(err)) => {
            let hint = if err.kind() == std::io::ErrorKind::ConnectionRefused {
                " (is the server running on that address?)"
            } else {
                ""
            };
            result.error = Some(format!("connect to {} failed: {err}{hint}", spec.addr));
            return result;
        }
        Ok(Ok(stream)) => stream,
    };
    // One small message at a time: send each at once, do not let Nagle's
    // algorithm hold it back.
    let _ = stream.set_nodelay(true);
    // A framed message starts with its length; the reply's length is the
    // same, and upper-casing leaves those four bytes alone unless one of
    // them happens to be a lower-case letter, so the expected reply is
    // built from the header and the upper-cased payload separately.
    let header: Vec<u8> = if spec.framed {
        (spec.size as u32).to_be_bytes().to_vec()
    } else {
        Vec::new()
    };
    let h = header.len();
    let mut message = vec![0u8; h + spec.size];
    message[..h].copy_from_slice(&header);
    let mut expected = message.clone();
    let mut reply = vec![0u8; message.len()];
    let mut seq = 0u64;
    loop {
        if spec.messages.is_some_and(|n| seq >= n) {
            result.done = Some(start.elapsed());
            break;
        }
        fill(&mut message[h..], id, seq);
        expected[h..].copy_from_slice(&message[h..]);
        expected[h..].make_ascii_uppercase();
        let sent = Instant::now();
        let exchange = async {
            stream.write_all(&message).await?;
            // Not one read: a stream may hand us the reply in pieces.
            stream.read_exact(&mut reply).await
        };
        match timeout_at(end.into(), exchange).await {
            Err(_) => {
                result.waiting = true;
                break;
            }
            Ok(Err(err)) => {
                result.error = Some(match err.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        "the server closed the connection before replying".to_string()
                    }
                    _ => format!("connection failed: {err}"),
                });
                break;
            }
            Ok(Ok(_)) => {}
        }
        let now = Instant::now();
        if reply != expected {
            result.wrong += 1;
            result.error = Some(format!(
                "wrong reply: sent {}, got {}",
                shared::show(&message),
                shared::show(&reply)
            ));
            break;
        }
        result.first_reply.get_or_insert(now - start);
        result.latencies.record(now - sent);
        replies.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
    result
}

/// One web client: a new connection per request, as a browser does with
/// `Connection: close`, and the whole answer read until the server hangs up.
async fn http_client(
    spec: &Spec,
    start: Instant,
    end: Instant,
    replies: &AtomicU64,
) -> ClientResult {
    let mut result = ClientResult::default();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        spec.addr
    );
    let mut answer = Vec::with_capacity(1024);
    let mut seq = 0u64;
    loop {
        if spec.messages.is_some_and(|n| seq >= n) {
            result.done = Some(start.elapsed());
            break;
        }
        let sent = Instant::now();
        answer.clear();
        let fetch = async {
            let mut stream = TcpStream::connect(spec.addr).await?;
            stream.write_all(request.as_bytes()).await?;
            stream.read_to_end(&mut answer).await
        };
        match timeout_at(end.into(), fetch).await {
            Err(_) => {
                result.waiting = seq == 0;
                break;
            }
            Ok(Err(err)) => {
                result.error = Some(format!("request failed: {err}"));
                break;
            }
            Ok(Ok(_)) => {}
        }
        let now = Instant::now();
        if let Err(why) = check_page(&answer) {
            result.wrong += 1;
            result.error = Some(why);
            break;
        }
        result.first_reply.get_or_insert(now - start);
        result.latencies.record(now - sent);
        replies.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
    result
}

/// Checks a web answer: status 200, a body of exactly Content-Length bytes,
/// and the page's words in it.
fn check_page(answer: &[u8]) -> Result<(), String> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!("no end of head in {}", shared::show(answer)));
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let body = &answer[end + 4..];
    if !head.starts_with("http/1.1 200") && !head.starts_with("http/1.0 200") {
        return Err(format!("not a 200: {}", shared::show(&answer[..end])));
    }
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    if length != Some(body.len()) {
        return Err(format!(
            "Content-Length {length:?}, body {} bytes",
            body.len()
        ));
    }
    if !String::from_utf8_lossy(body).contains("不要回答") {
        return Err(format!("the page lacks its words: {}", shared::show(body)));
    }
    Ok(())
}

async fn udp_client(
    id: usize,
    spec: &Spec,
    start: Instant,
    end: Instant,
    replies: &AtomicU64,
) -> ClientResult {
    let mut result = ClientResult::default();
    let local = if spec.addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(err) => {
            result.error = Some(format!("could not bind a UDP socket: {err}"));
            return result;
        }
    };
    // `connect` on UDP only fixes the peer: replies from anyone else are
    // filtered out, and "port unreachable" becomes an error we can see.
    if let Err(err) = socket.connect(spec.addr).await {
        result.error = Some(format!("UDP connect to {} failed: {err}", spec.addr));
        return result;
    }
    let mut message = vec![0u8; spec.size];
    let mut expected = vec![0u8; spec.size];
    let mut buf = vec![0u8; 65_535];
    // Messages that timed out; their replies may still come, late.
    let mut timed_out: Vec<u64> = Vec::new();
    let mut seq = 0u64;
    'messages: loop {
        if spec.messages.is_some_and(|n| seq >= n) {
            result.done = Some(start.elapsed());
            break;
        }
        fill(&mut message, id, seq);
        expected.copy_from_slice(&message);
        expected.make_ascii_uppercase();
        let sent = Instant::now();
        if Instant::now() >= end {
            break;
        }
        if let Err(err) = socket.send(&message).await {
            result.error = Some(format!("sending a datagram failed: {err}"));
            break;
        }
        let give_up = (sent + UDP_WAIT).min(end);
        loop {
            let n = match timeout_at(give_up.into(), socket.recv(&mut buf)).await {
                Err(_) if give_up >= end => {
                    result.waiting = true;
                    break 'messages;
                }
                Err(_) => {
                    result.lost += 1;
                    if timed_out.len() < 1024 {
                        timed_out.push(seq);
                    }
                    seq += 1;
                    continue 'messages;
                }
                Ok(Err(err)) => {
                    result.error = Some(match err.kind() {
                        std::io::ErrorKind::ConnectionRefused => {
                            format!("nothing listens on UDP {} (port unreachable)", spec.addr)
                        }
                        _ => format!("receiving a datagram failed: {err}"),
                    });
                    break 'messages;
                }
                Ok(Ok(n)) => n,
            };
            let got = &buf[..n];
            if got == expected.as_slice() {
                break;
            }
            if is_late(got, id, &timed_out, spec.size) {
                result.late += 1;
                continue;
            }
            result.wrong += 1;
            result.error = Some(format!(
                "wrong reply: sent {}, got {}",
                shared::show(&message),
                shared::show(got)
            ));
            break 'messages;
        }
        let now = Instant::now();
        result.first_reply.get_or_insert(now - start);
        result.latencies.record(now - sent);
        replies.fetch_add(1, Ordering::Relaxed);
        seq += 1;
    }
    result
}

/// Is `got` the reply to one of our messages that already timed out?
fn is_late(got: &[u8], id: usize, timed_out: &[u64], size: usize) -> bool {
    let mut old = vec![0u8; size];
    timed_out.iter().any(|&seq| {
        fill(&mut old, id, seq);
        old.make_ascii_uppercase();
        old == got
    })
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn summarise(spec: &Spec, window: Duration, results: Vec<ClientResult>) -> RunStats {
    let mut all = Latencies::new();
    let mut stats = RunStats {
        clients: spec.clients,
        size: spec.size,
        seconds: window.as_secs_f64(),
        ..RunStats::default()
    };
    for r in results {
        stats.served += usize::from(r.first_reply.is_some());
        stats.finished += usize::from(r.done.is_some());
        stats.never_connected += usize::from(r.never_connected);
        // A served client always has one message in flight when the time is
        // up; "waiting" counts the clients that never got a reply at all.
        stats.waiting += usize::from(r.waiting && r.first_reply.is_none());
        stats.lost += r.lost;
        stats.late += r.late;
        stats.wrong += r.wrong;
        if let Some(err) = r.error {
            stats.broken += usize::from(r.wrong == 0);
            stats.first_error.get_or_insert(err);
        }
        stats.first_reply_ms.push(r.first_reply.map(millis));
        stats.done_ms.push(r.done.map(millis));
        all.merge(&r.latencies);
    }
    stats.messages = all.count();
    let secs = window.as_secs_f64().max(1e-9);
    stats.msgs_per_s = stats.messages as f64 / secs;
    stats.mb_per_s = stats.messages as f64 * spec.size as f64 / secs / 1e6;
    stats.latency = all.percentiles();
    sort_options(&mut stats.first_reply_ms);
    sort_options(&mut stats.done_ms);
    stats
}

/// Sorts times ascending, the clients that never got there last.
fn sort_options(values: &mut [Option<f64>]) {
    values.sort_by(|a, b| match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differ_and_carry_their_number() {
        let mut a = vec![0u8; 16];
        let mut b = vec![0u8; 16];
        fill(&mut a, 0, 1);
        fill(&mut b, 0, 2);
        assert_ne!(a, b);
        assert!(a.starts_with(b"0000000001"));
        assert!(a.iter().any(u8::is_ascii_lowercase));
        let mut short = vec![0u8; 3];
        fill(&mut short, 5, 1234);
        assert_eq!(short, b"234");
    }

    #[test]
    fn a_late_reply_is_recognised() {
        let mut old = vec![0u8; 32];
        fill(&mut old, 3, 7);
        old.make_ascii_uppercase();
        assert!(is_late(&old, 3, &[5, 7], 32));
        assert!(!is_late(&old, 3, &[5], 32));
        assert!(!is_late(&old, 4, &[7], 32));
    }
}
