//! Lesson 06, exercise 1 (a solution): a bot for the chat room. It joins as
//! `shouter` and answers every chat line with the same text in capitals.
//!
//! The bot speaks only when spoken to, so, unlike the chat client, it needs
//! one thread only: read a line, answer it, read the next, as lesson 02's
//! server did.

// ANCHOR: imports
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use lesson06_protocol::MAX_SERVER_LINE;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 06, exercise 1: a bot that joins lesson06-server's room and
/// repeats every chat line in capitals.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9006", value_parser = shared::parse_addr)]
    addr: String,

    /// The bot's name in the room
    #[arg(long, default_value = "shouter")]
    name: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(run(&args))
}
// ANCHOR_END: args

// ANCHOR: bot
fn run(args: &Args) -> anyhow::Result<()> {
    let addr = &args.addr;
    let conn =
        TcpStream::connect(addr).with_context(|| shared::no_server(addr, "lesson06-server"))?;
    let mut out = &conn;
    out.write_all(format!("/nick {}\n", args.name).as_bytes())
        .context("sending the name failed")?;
    let mut lines = BufReader::new(&conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_SERVER_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("lost the connection to the server")?;
        if n == 0 {
            bail!("server closed the connection");
        }
        if line.len() > MAX_SERVER_LINE {
            bail!("the server sent a line longer than {MAX_SERVER_LINE} bytes");
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        println!("{text}");
        // Notices start with "* "; chat lines are "NAME: text". Answer only
        // the text, so the answer is never longer than the server's limit.
        if text.starts_with("* ") {
            continue;
        }
        if let Some((_, said)) = text.split_once(": ") {
            let mut answer = shared::upper(said.as_bytes());
            answer.push(b'\n');
            out.write_all(&answer).context("answering failed")?;
        }
    }
}
// ANCHOR_END: bot
