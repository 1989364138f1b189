//! Lesson 10 client: lesson 06's chat client, with lesson 10's address.
//!
//! The room of lesson 10 speaks lesson 06's protocol exactly; only the
//! server changed, from threads to an event loop. So the client is lesson
//! 06's, from the library of that package, and this file gives it this
//! lesson's default address and server.

// ANCHOR: main
use std::process::ExitCode;

use clap::Parser;

/// Lesson 10 client: lesson 06's chat client, pointed at lesson 10's port.
/// Joins the chat room of lesson10-server. Lines you type go to everybody
/// else; lines from the others are printed as they arrive. Commands:
/// /nick NAME, /who, /quit.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address of the server: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9010", value_parser = shared::parse_addr)]
    addr: String,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    shared::exit_status(lesson06_client::run(&args.addr, "lesson10-server"))
}
// ANCHOR_END: main
