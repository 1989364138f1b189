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

/// The page every web server in the benchmark serves at `/`: the bytes of
/// lesson 09's own page, so that all of them send the same answer.
pub const PAGE: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
                        <title>不要回答</title></head>\n\
                        <body><h1> 不要回答！！！不要回答！！！不要回答！！！</h1></body></html>\n";

// ANCHOR: hyper-page
/// The hyper baseline for lesson 09: an HTTP/1 server built on hyper, on a
/// multi-threaded tokio runtime, serving the page at `/` and 404 elsewhere.
/// It closes each connection after its answer when the client asks for it
/// (`Connection: close`), as the lesson's server always does.
pub fn hyper_page(addr: &str) -> anyhow::Result<()> {
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::header::{CONTENT_TYPE, HeaderValue};
    use hyper::{Request, Response, StatusCode};

    async fn answer(
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
        if req.uri().path() != "/" {
            *response.status_mut() = StatusCode::NOT_FOUND;
            *response.body_mut() = Full::new(Bytes::from_static(b"not found\n"));
        }
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        Ok(response)
    }

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
            let conn = match listener.accept().await {
                Ok((conn, _peer)) => conn,
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(conn);
                let service = hyper::service::service_fn(answer);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    })
}
// ANCHOR_END: hyper-page
