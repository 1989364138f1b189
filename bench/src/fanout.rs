//! Chat fan-out: K clients in lesson 06's room, one of them talking.
//!
//! The clients join one after another (each waits for its welcome line), and
//! every one of them reads all the time from the moment it is in, as a chat
//! client must: the server hangs up on a client whose queue fills. Once every
//! client has seen every later `* NAME joined`, the sender sends its lines
//! one at a time, each stamped with the moment it was sent; the next line
//! goes when all K - 1 others have received this one (or after a deadline).
//! Delivery latency is measured per receiver: from the send to the moment
//! the receiver read the line.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::procs;
use crate::stats::{Latencies, Percentiles};

/// The longest one step may take: a connect and welcome, all the joins, one
/// line reaching everybody.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Spec {
    pub addr: SocketAddr,
    pub clients: usize,
    pub messages: u64,
    pub pid: Option<u32>,
    pub progress: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FanoutStats {
    pub clients: usize,
    pub messages: u64,
    /// Lines received by the K - 1 receivers (at most messages * (K - 1)).
    pub deliveries: u64,
    /// Lines a receiver never got within the deadline.
    pub missing: u64,
    /// Delivery latency, send to receipt, over all deliveries.
    pub latency: Option<Percentiles>,
    /// Time for all K clients to join and hear about each other.
    pub join_ms: f64,
    /// Time from the first line sent to the last one delivered.
    pub send_ms: f64,
    /// The server's peak resident memory and thread count.
    pub server_rss_kb: Option<u64>,
    pub server_threads: Option<u64>,
    pub first_error: Option<String>,
}

/// What a receiver tells the coordinator.
enum Event {
    Joined,
    Got { seq: u64, latency_us: u32 },
    Closed(String),
}

pub async fn run(spec: &Spec) -> anyhow::Result<FanoutStats> {
    if spec.clients < 2 {
        bail!("a fan-out needs at least 2 clients (one sender, one receiver)");
    }
    let base = Instant::now();
    let peak = procs::Peak::default();
    let (events, mut inbox) = mpsc::unbounded_channel();
    let mut writers: Vec<OwnedWriteHalf> = Vec::with_capacity(spec.clients);
    // Stops every receiver when the run ends, however it ends.
    let mut readers = Readers(Vec::with_capacity(spec.clients));
    let mut stats = FanoutStats {
        clients: spec.clients,
        messages: spec.messages,
        ..FanoutStats::default()
    };

    // Join, one after another.
    for i in 0..spec.clients {
        let stream = timeout(STEP_TIMEOUT, TcpStream::connect(spec.addr))
            .await
            .with_context(|| format!("client {i} could not connect within {STEP_TIMEOUT:?}"))?
            .with_context(|| format!("client {i} could not connect to {}", spec.addr))?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read);
        let mut welcome = String::new();
        timeout(STEP_TIMEOUT, lines.read_line(&mut welcome))
            .await
            .with_context(|| format!("client {i} got no welcome within {STEP_TIMEOUT:?}"))??;
        if welcome.is_empty() || welcome.contains("server full") {
            bail!(
                "client {i} was turned away ({:?}); start the server with --max-clients {}",
                welcome.trim_end(),
                spec.clients + 10
            );
        }
        readers
            .0
            .push(tokio::spawn(receive(lines, base, events.clone())));
        writers.push(write);
        if spec.progress && (i + 1) % 100 == 0 {
            eprintln!(
                "  fan-out: {} of {} clients in the room",
                i + 1,
                spec.clients
            );
        }
        if let Some(pid) = spec.pid {
            if i % 50 == 0 {
                peak.sample(pid);
            }
        }
    }
    drop(events);

    // Client i hears about the K - 1 - i clients after it.
    let joins_expected = spec.clients * (spec.clients - 1) / 2;
    let mut joins = 0;
    while joins < joins_expected {
        match timeout(STEP_TIMEOUT, inbox.recv()).await {
            Ok(Some(Event::Joined)) => joins += 1,
            Ok(Some(Event::Got { .. })) => {}
            Ok(Some(Event::Closed(why))) => bail!("a client was disconnected while joining: {why}"),
            Ok(None) => bail!("every client was disconnected"),
            Err(_) => bail!(
                "only {joins} of {joins_expected} join notices arrived within {STEP_TIMEOUT:?}"
            ),
        }
    }
    stats.join_ms = base.elapsed().as_secs_f64() * 1e3;
    if let Some(pid) = spec.pid {
        peak.sample(pid);
    }
    if spec.progress {
        eprintln!(
            "  fan-out: {} clients joined in {:.0} ms; sending {} lines",
            spec.clients, stats.join_ms, spec.messages
        );
    }

    // Talk: one line at a time, each to everybody.
    let receivers = spec.clients as u64 - 1;
    let mut latencies = Latencies::new();
    let send_start = Instant::now();
    let sender = &mut writers[0];
    for seq in 0..spec.messages {
        let sent_us = base.elapsed().as_micros();
        let line = format!("m {seq} {sent_us}\n");
        timeout(STEP_TIMEOUT, sender.write_all(line.as_bytes()))
            .await
            .context("sending a chat line timed out")?
            .context("sending a chat line failed")?;
        let mut got = 0;
        while got < receivers {
            match timeout(STEP_TIMEOUT, inbox.recv()).await {
                Ok(Some(Event::Got { seq: s, latency_us })) if s == seq => {
                    got += 1;
                    latencies.record(Duration::from_micros(latency_us.into()));
                }
                Ok(Some(Event::Got { .. } | Event::Joined)) => {}
                Ok(Some(Event::Closed(why))) => {
                    stats.first_error.get_or_insert(why);
                }
                Ok(None) => break,
                Err(_) => break, // the rest counts as missing
            }
        }
        stats.missing += receivers - got;
        if seq % 20 == 0 {
            if let Some(pid) = spec.pid {
                peak.sample(pid);
            }
        }
    }
    stats.send_ms = send_start.elapsed().as_secs_f64() * 1e3;
    // Hang up: stop the readers and drop the sockets.
    drop(readers);
    drop(writers);
    if let Some(pid) = spec.pid {
        peak.sample(pid);
        (stats.server_rss_kb, stats.server_threads) = peak.get();
    }
    stats.deliveries = latencies.count();
    stats.latency = latencies.percentiles();
    if stats.missing > 0 && stats.first_error.is_none() {
        stats.first_error = Some(format!(
            "{} deliveries missing after {STEP_TIMEOUT:?}",
            stats.missing
        ));
    }
    if spec.progress {
        eprintln!("  fan-out: done");
    }
    Ok(stats)
}

/// The receiver tasks, aborted on drop.
struct Readers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

/// One receiver: reads lines until the connection ends, reporting joins and
/// stamped chat lines (`NAME: m SEQ MICROS`).
async fn receive(
    mut lines: BufReader<tokio::net::tcp::OwnedReadHalf>,
    base: Instant,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) => {
                let _ = events.send(Event::Closed("the server hung up".into()));
                return;
            }
            Err(err) => {
                let _ = events.send(Event::Closed(format!("reading failed: {err}")));
                return;
            }
            Ok(_) => {}
        }
        let now_us = base.elapsed().as_micros();
        let text = line.trim_end();
        if text.starts_with("* ") {
            if text.ends_with(" joined") {
                let _ = events.send(Event::Joined);
            }
            continue;
        }
        if let Some((seq, sent_us)) = parse_stamp(text) {
            let latency_us = now_us.saturating_sub(sent_us).min(u128::from(u32::MAX)) as u32;
            if events.send(Event::Got { seq, latency_us }).is_err() {
                return;
            }
        }
    }
}

/// `NAME: m SEQ MICROS` → (SEQ, MICROS).
pub fn parse_stamp(text: &str) -> Option<(u64, u128)> {
    let (_, said) = text.split_once(": m ")?;
    let (seq, sent) = said.split_once(' ')?;
    Some((seq.parse().ok()?, sent.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_chat_lines() {
        assert_eq!(
            parse_stamp("127.0.0.1:5000: m 12 345678"),
            Some((12, 345_678))
        );
        assert_eq!(parse_stamp("* 127.0.0.1:5000 joined"), None);
        assert_eq!(parse_stamp("bob: hello"), None);
    }
}
