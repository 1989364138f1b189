//! The baseline echo servers the lessons are measured against.
//!
//! Both follow the course's command-line contract (`listening on IP:PORT`
//! first, port 0 allowed) and its byte rule (answer each read with the same
//! bytes upper-cased), so the load generator drives them exactly like a
//! lesson server. Unlike the lessons, they log nothing per message: they are
//! the ceilings, and a line per message is a cost of the lessons' own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ANCHOR: tokio-echo
/// The tokio echo server: one task per connection on a multi-threaded
/// runtime with one worker per core. This is what a Rust programmer would
/// write to make an echo server fast, so it serves as the practical ceiling.
pub fn tokio_echo(addr: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the tokio runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| shared::cannot_listen(addr))?;
        shared::print_listening(listener.local_addr()?);
        loop {
            let (mut conn, _peer) = match listener.accept().await {
                Ok(call) => call,
                Err(err) => {
                    // Usually "too many open files": pause instead of spinning.
                    eprintln!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return, // hung up, or reset
                        Ok(n) => n,
                    };
                    buf[..n].make_ascii_uppercase();
                    if conn.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}
// ANCHOR_END: tokio-echo

// ANCHOR: thread-echo
/// The thread-per-connection echo server, in the style of lesson 06: the
/// main thread only accepts, and every caller gets a thread of their own
/// that runs lesson 03's communication loop with blocking calls.
pub fn thread_echo(addr: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| shared::cannot_listen(addr))?;
    shared::print_listening(listener.local_addr()?);
    loop {
        let conn = match listener.accept() {
            Ok((conn, _peer)) => conn,
            Err(err) => {
                eprintln!("accept failed: {err}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // `Builder::spawn` reports "no more threads" as an error; dropping
        // the connection then hangs up on that one caller.
        if let Err(err) = thread::Builder::new().spawn(move || echo(conn)) {
            eprintln!("could not start a thread: {err}");
        }
    }
}

/// Lesson 03's communication loop without the log lines.
fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf[..n].make_ascii_uppercase();
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}
// ANCHOR_END: thread-echo
