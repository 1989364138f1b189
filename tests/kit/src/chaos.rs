//! Chaos mode: with `CHAOS=SEED` set, the servers that the tests of lessons
//! 02 to 12 start are reached through lesson 13's proxy, which passes the
//! bytes on in small random pieces, each held a moment. On loopback a
//! reply usually arrives in one read; through the proxy it seldom does, so
//! code that takes one read for one message fails here instead of on a
//! real network.
//!
//! [`Server::start`](crate::Server::start) and its siblings call [`wrap`]:
//! when chaos is on, the test is one of lesson 02 to 12's (its file, or a
//! `lessonNN_` name in `hostile`), the server listens on `127.0.0.1` and
//! the test is not [`exempt`], a proxy is
//! started in front of it and `server.addr` becomes the proxy's address
//! (`server.direct` stays the server's own). The proxy dies with the
//! server. Lesson 05's servers speak UDP, and get the proxy's `--udp`
//! relay, with no faults: loss is for the tests that are about loss.
//!
//! Each proxy's seed comes from `CHAOS`, the test's name and how many
//! servers the test started before, so each test differs but the same
//! `CHAOS` replays it exactly. The line printed on stderr when a proxy
//! starts (shown by the test harness when the test fails) says how.

use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use anyhow::{Context, Result};

use crate::bin_path;
use crate::procs::{Keep, Proc, parse_listening};

thread_local! {
    static EXEMPT: Cell<Option<&'static str>> = const { Cell::new(None) };
    static BULK: Cell<bool> = const { Cell::new(false) };
    static STARTED: Cell<u64> = const { Cell::new(0) };
}

/// The reason most tests give to [`exempt`]: a server logs its caller's
/// address, and behind a proxy the caller is the proxy.
pub const ADDRESS_IN_LOG: &str =
    "asserts the caller's address in the server log, which a proxy changes";

/// The reason of the tests of lessons 02 to 04 whose servers log what each
/// read returned, when the test expects one such line per message.
pub const SAID_PER_READ: &str = "expects one said line per read, and a proxy splits the reads";

/// Says that this test cannot work through a proxy, and why (one short
/// phrase). Call it at the top of the test, before starting a server: its
/// servers are then reached directly, even with `CHAOS` set.
pub fn exempt(reason: &'static str) {
    EXEMPT.with(|e| e.set(Some(reason)));
}

/// Says that this test moves megabytes or floods: its proxy passes large
/// pieces and holds none back, so that chaos mode stays quick.
pub fn bulk() {
    BULK.with(|b| b.set(true));
}

/// The seed in `CHAOS`, if it is set. Anything but a number is a mistake
/// the whole run should stop on.
pub fn seed() -> Option<u64> {
    let text = std::env::var("CHAOS").ok()?;
    match text.trim().parse() {
        Ok(seed) => Some(seed),
        Err(_) => panic!("CHAOS={text:?} is not a number: set CHAOS to a seed, such as CHAOS=1"),
    }
}

/// The test binary's name (`lesson07`, `hostile`), for the replay line.
fn binary() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let stem = exe.file_stem()?.to_str()?;
    Some(stem.split('-').next()?.to_string())
}

/// The lesson a test is about (`lesson07`), if chaos mode applies to it:
/// lessons 02 to 12. That is the binary's lesson, or in the files that
/// cover several lessons (`hostile`, `limits`...) the `lessonNN_` its name
/// starts with. Lesson 13's tests are about the proxy itself.
fn lesson(binary: &str, test: &str) -> Option<String> {
    let name = test.rsplit("::").next().unwrap_or(test);
    [binary, name].into_iter().find_map(|text| {
        let digits = text.strip_prefix("lesson")?.get(..2)?;
        let number: u32 = digits.parse().ok()?;
        (2..=12)
            .contains(&number)
            .then(|| format!("lesson{digits}"))
    })
}

/// FNV-1a, to turn the test's name into a number that never changes.
fn hash(seed: u64, text: &str, index: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in text.bytes().chain(index.to_le_bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 1_000_000_007
}

/// The proxy in front of one server, and the address to reach it by.
pub struct Chaos {
    pub proc: Proc,
    pub addr: SocketAddr,
}

/// If chaos mode applies to this server, starts the proxy in front of it.
pub fn wrap(server: SocketAddr) -> Result<Option<Chaos>> {
    let Some(chaos) = seed() else {
        return Ok(None);
    };
    if server.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) || EXEMPT.with(Cell::get).is_some() {
        return Ok(None);
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("unnamed").to_string();
    let binary = binary().unwrap_or_default();
    let Some(lesson) = lesson(&binary, &test) else {
        return Ok(None);
    };
    if test.contains("book_output_") {
        return Ok(None); // recorded for the book: the server's own log, exactly
    }
    let index = STARTED.with(|s| s.replace(s.get() + 1));
    let seed = hash(chaos, &test, index);
    let mut args: Vec<String> = vec![
        "--to".into(),
        server.to_string(),
        "127.0.0.1:0".into(),
        "--seed".into(),
        seed.to_string(),
        "--max-clients".into(),
        "1000".into(),
    ];
    if lesson == "lesson05" {
        args.push("--udp".into());
    } else if BULK.with(Cell::get) {
        args.extend(["--split".into(), "4096".into()]);
    } else {
        // Pieces of 1 to N bytes, N from the seed: one byte at a time in a
        // quarter of the tests. A millisecond's delay on each.
        let split = [1, 3, 8, 16][(seed % 4) as usize];
        args.extend([
            "--split".into(),
            split.to_string(),
            "--delay".into(),
            "1".into(),
        ]);
    }
    let mut command = Command::new(bin_path("lesson13-proxy")?);
    command.args(&args);
    let mut proc = Proc::spawn_keeping(command, Keep::FirstLine)?;
    let first = proc.next_line()?;
    let addr = parse_listening(&first).context("the chaos proxy did not start")?;
    let shown = args.join(" ");
    eprintln!(
        "chaos: CHAOS={chaos} via lesson13-proxy {shown}; replay: CHAOS={chaos} cargo test -p course-tests --test {binary} -- {test} --exact"
    );
    Ok(Some(Chaos { proc, addr }))
}
