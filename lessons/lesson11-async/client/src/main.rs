//! Lesson 11 client: lesson 06's chat client as one task.
//!
//! Lesson 06's client needed two threads because both the keyboard and the
//! server can have something for us at any moment, and a thread can wait
//! for only one of them. `tokio::select!` waits for several futures at once
//! and runs the branch of whichever is ready first. So one task reads the
//! keyboard and the server together, and no second thread is needed.

// ANCHOR: imports
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use lesson06_protocol::MAX_SERVER_LINE;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 11 client: joins the chat room of lesson11-server (or of lessons
/// 06 and 10). Lines you type go to everybody else; lines from the others
/// are printed as they arrive. Commands: /nick NAME, /who, /quit.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9011", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    // One task needs no worker threads: a current-thread runtime runs
    // everything on the main thread. Reading stdin blocks in the system,
    // so tokio reads it on a helper thread of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => return shared::exit_status(Err(err.into())),
    };
    let result = runtime.block_on(run(&args.addr));
    // That helper thread may still wait for a line that never comes, and
    // nothing can interrupt it: end without waiting for it.
    runtime.shutdown_background();
    shared::exit_status(result)
}
// ANCHOR_END: args

// ANCHOR: connect
async fn run(addr: &str) -> anyhow::Result<()> {
    let conn = TcpStream::connect(addr)
        .await
        .with_context(|| shared::no_server(addr, "lesson11-server"))?;
    let (from_server, mut to_server) = conn.into_split();
    let mut server_lines = ServerLines {
        conn: from_server,
        partial: Vec::new(),
    };
    // `split(b'\n')` gives the typed lines as bytes. The `Split` keeps a
    // partly read line inside itself, between calls: that is what makes
    // it safe in `select!` (below).
    let mut typed_lines = BufReader::new(tokio::io::stdin()).split(b'\n');
    let prompt = std::io::stdin().is_terminal();
    let mut typing = true; // false after end of input or /quit
    show_prompt(prompt);
    // ANCHOR_END: connect

    // ANCHOR: select
    loop {
        tokio::select! {
            // Both branches are cancellation safe: when the other branch
            // wins, this future is dropped, and no byte it had read is
            // lost, because the bytes live in `ServerLines` and `Split`.
            line = server_lines.next_line() => {
                match line? {
                    Some(line) => {
                        // At a terminal, in the prompt's place.
                        let text = String::from_utf8_lossy(&line);
                        shared::print_incoming(text.trim_end_matches('\r'));
                    }
                    None if typing => bail!("server closed the connection"),
                    None => return Ok(()), // we hung up first: done
                }
            }
            // `if typing`: once the keyboard is done, stop asking it.
            line = typed_lines.next_segment(), if typing => {
                shared::prompt_answered();
                let line = line.context("reading the keyboard failed")?;
                let Some(mut line) = line else {
                    // End of input: a FIN, then wait for the server's last
                    // lines and its hang-up, as lesson 06's client does.
                    typing = false;
                    let _ = to_server.shutdown().await;
                    continue;
                };
                if line.ends_with(b"\r") {
                    line.pop(); // typed on Windows
                }
                let quit = line == b"/quit";
                line.push(b'\n');
                if to_server.write_all(&line).await.is_err() {
                    // Gone. The server branch reads why on the next turn.
                    typing = false;
                    continue;
                }
                if quit {
                    typing = false;
                    let _ = to_server.shutdown().await;
                } else {
                    show_prompt(prompt);
                }
            }
        }
    }
}

/// The `>> ` prompt, only when a person types.
fn show_prompt(prompt: bool) {
    if prompt {
        shared::show_prompt();
    }
}
// ANCHOR_END: select

// ANCHOR: server-lines
/// The lines from the server, each at most MAX_SERVER_LINE bytes: a
/// client trusts its server no more than a server trusts its clients.
struct ServerLines {
    conn: OwnedReadHalf,
    /// The start of a line whose `\n` has not come yet. It lives here, not
    /// in `next_line`, so that `select!` may drop `next_line` at its
    /// `.await` and lose nothing.
    partial: Vec<u8>,
}

impl ServerLines {
    /// The next line without its `\n`, or `None` when the server hangs up.
    async fn next_line(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.partial.drain(..=end).collect();
                line.pop();
                return Ok(Some(line));
            }
            ensure!(
                self.partial.len() <= MAX_SERVER_LINE,
                "the server sent a line longer than {MAX_SERVER_LINE} bytes"
            );
            // `read` is cancellation safe: dropped before it is ready, it
            // has read nothing.
            let mut chunk = [0; 4096];
            let n = self
                .conn
                .read(&mut chunk)
                .await
                .context("lost the connection to the server")?;
            if n == 0 {
                // The end. A last line without `\n` is still a line.
                let last = std::mem::take(&mut self.partial);
                return Ok((!last.is_empty()).then_some(last));
            }
            self.partial.extend_from_slice(&chunk[..n]);
        }
    }
}
// ANCHOR_END: server-lines
