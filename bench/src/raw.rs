//! The raw loopback ceiling: two sockets, one writing S-byte messages as fast
//! as it can, the other reading and throwing the bytes away. No replies, no
//! upper-casing, no waiting for the other side: whatever an echo server does
//! on top of this costs time, so no echo server can beat it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};

use crate::echo::RunStats;

/// Streams `size`-byte writes from one socket to another for `duration`.
pub fn stream(size: usize, duration: Duration) -> anyhow::Result<RunStats> {
    stream_through(size, duration, |addr| Ok((addr, ())))
}

/// The same stream, written to the address `hop` returns for the reader's
/// address: a proxy in front of the reader, say. Whatever `hop` returns
/// besides (the proxy's process) is kept until the stream has ended.
pub fn stream_through<G>(
    size: usize,
    duration: Duration,
    hop: impl FnOnce(SocketAddr) -> anyhow::Result<(SocketAddr, G)>,
) -> anyhow::Result<RunStats> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the raw listener")?;
    let (addr, guard) = hop(listener.local_addr()?)?;
    let reader = thread::spawn(move || -> std::io::Result<u64> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut conn = TcpStream::connect(addr).context("connecting the raw writer")?;
    conn.set_nodelay(true)?;
    let message = vec![b'x'; size];
    let cpu_before = crate::procs::cpu_seconds(0);
    let start = Instant::now();
    let end = start + duration;
    'writing: loop {
        // Look at the clock only every 256 writes: it is not free either.
        for _ in 0..256 {
            conn.write_all(&message)?;
        }
        if Instant::now() >= end {
            break 'writing;
        }
    }
    drop(conn); // the reader sees the end of the stream
    let bytes = reader
        .join()
        .map_err(|_| anyhow!("the raw reader thread panicked"))?
        .context("the raw reader failed")?;
    let seconds = start.elapsed().as_secs_f64();
    drop(guard);
    let loadgen_cpu_s = crate::procs::cpu_seconds(0)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let messages = bytes / size as u64;
    Ok(RunStats {
        clients: 1,
        size,
        seconds,
        messages,
        msgs_per_s: messages as f64 / seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
        served: 1,
        finished: 1,
        loadgen_cpu_s,
        ..RunStats::default()
    })
}
