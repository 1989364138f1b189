//! Lesson 06 client: the command line. The client itself is the package's
//! library (`lib.rs`), which lesson 10's client uses too.

// ANCHOR: args
use std::process::ExitCode;

use clap::Parser;

/// Lesson 06 client: joins the chat room of lesson06-server. Lines you type go
/// to everybody else; lines from the others are printed as they arrive.
/// Commands: /nick NAME, /who, /quit.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9006", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(lesson06_client::run(&args.addr, "lesson06-server"))
}
// ANCHOR_END: args
