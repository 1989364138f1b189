//! The command-line contract every lesson binary follows (CONTRIBUTING.md,
//! "The command-line contract"), checked the same way for every lesson. Each lesson's test file calls
//! these from tests of its own, so a failure names the lesson; the safe
//! default (quiet on loopback, a warning elsewhere) is called from
//! `tests/hostile.rs`, whose tests the book's chapter on defences names.
//!
//! What only one lesson has (an option such as `--idle-timeout`) is tested
//! in that lesson's file, next to the call.

use std::net::SocketAddr;

use anyhow::{Result, ensure};
use predicates::prelude::*;

use crate::{Finished, Server, cmd, connect, udp_socket, unused_addr};

/// `--help` says what the binary does, shows its usage and its default
/// address, and exits 0.
pub fn help_works(bin: &str, default_addr: &str) -> Result<()> {
    help_shows(bin, default_addr, &[])
}

/// [`help_works`], and the help also shows each of `also` (a binary's own
/// option, its default), so one test covers the whole of its `--help`.
pub fn help_shows(bin: &str, default_addr: &str, also: &[&str]) -> Result<()> {
    let assert = cmd(bin)?
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains(format!("Usage: {bin} [OPTIONS] [ADDR]"))
                .or(predicate::str::contains(format!("Usage: {bin} [ADDR]"))),
        )
        .stdout(predicate::str::contains(format!(
            "[default: {default_addr}]"
        )))
        .stderr("");
    let help = String::from_utf8_lossy(&assert.get_output().stdout);
    for wanted in also {
        ensure!(
            help.contains(wanted),
            "{bin} --help does not show {wanted:?}: {help}"
        );
    }
    Ok(())
}

/// A bad address is one line on stderr naming the bad value and the form an
/// address takes (`IP:PORT`), exit status 2, nothing on stdout, no panic.
pub fn bad_address_is_refused(bin: &str) -> Result<()> {
    for bad in [
        "nowhere",
        "9001",
        "127.0.0.1",
        "127.0.0.1:port",
        "127.0.0.1:99999",
        "localhost",
    ] {
        let assert = cmd(bin)?
            .arg(bad)
            .write_stdin("")
            .assert()
            .code(2)
            .stdout("");
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        ensure!(
            stderr.lines().count() == 1,
            "{bin} {bad}: not one line: {stderr:?}"
        );
        ensure!(
            stderr.contains(&format!("'{bad}'")),
            "{bin} {bad}: value not named: {stderr:?}"
        );
        ensure!(
            stderr.contains("IP:PORT"),
            "{bin} {bad}: does not say what an address looks like: {stderr:?}"
        );
        ensure!(
            !stderr.contains("panicked"),
            "{bin} {bad}: panicked: {stderr:?}"
        );
    }
    Ok(())
}

/// A client with no server says in one line on stderr which address it
/// could not connect to and why, suggests starting the server, prints
/// nothing on stdout, exits 1 (2 is for bad arguments), and does not panic.
pub fn client_explains_no_server(client: &str, server: &str) -> Result<()> {
    let addr = unused_addr()?.to_string();
    let assert = cmd(client)?
        .arg(&addr)
        .write_stdin("hello\n")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "could not connect to {addr}"
        )))
        .stderr(predicate::str::contains(format!("cargo run -p {server}")))
        .stderr(predicate::str::contains("panicked").not());
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    ensure!(
        stderr.lines().count() == 1,
        "{client}: not one line: {stderr:?}"
    );
    Ok(())
}

/// How a test talks to a server once: a connection, or a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    /// TCP with one HTTP request (lesson 09's servers log requests, not
    /// connections).
    Http,
}

/// Starts `server` on `addr`, talks to it once over loopback (a connection
/// it logs as `connected`, a datagram it logs as `said`, or a request it
/// logs with its status), kills it, and
/// returns the address it listened on with what it printed.
///
/// Talking first is what makes its stderr complete: the warning is printed
/// just after the `listening on` line, and a server that logs a caller is
/// past it. Killing it as soon as the first line arrives could lose the
/// warning.
pub fn start_talk_stop(
    server: &str,
    addr: &str,
    transport: Transport,
) -> Result<(SocketAddr, Finished)> {
    start_talk_stop_with(server, addr, transport, &[])
}

/// [`start_talk_stop`] with `extra` arguments for the server (lesson 08's
/// `--dir`, say).
pub fn start_talk_stop_with(
    server: &str,
    addr: &str,
    transport: Transport,
    extra: &[&str],
) -> Result<(SocketAddr, Finished)> {
    let mut started = Server::start_on(server, addr, extra)?;
    let bound = started.addr;
    let local = SocketAddr::from(([127, 0, 0, 1], bound.port()));
    match transport {
        Transport::Tcp => {
            let _caller = connect(local)?;
            started.wait_for(" connected")?;
        }
        Transport::Udp => {
            udp_socket()?.send_to(b"hello", local)?;
            started.wait_for(" said ")?;
        }
        Transport::Http => {
            let mut caller = connect(local)?;
            std::io::Write::write_all(&mut caller, b"GET / HTTP/1.0\r\n\r\n")?;
            started.wait_for("client ")?;
        }
    }
    let done = started.kill()?;
    done.assert_no_panic()?;
    Ok((bound, done))
}

/// A server on loopback (`127.0.0.1`, the default) prints no warning.
pub fn server_is_quiet_on_loopback(server: &str, transport: Transport) -> Result<()> {
    server_is_quiet_on_loopback_with(server, transport, &[])
}

/// [`server_is_quiet_on_loopback`] with `extra` arguments for the server.
pub fn server_is_quiet_on_loopback_with(
    server: &str,
    transport: Transport,
    extra: &[&str],
) -> Result<()> {
    let (bound, done) = start_talk_stop_with(server, "127.0.0.1:0", transport, extra)?;
    ensure!(
        !done.stderr.contains("warning"),
        "{server} on {bound} warned: {:?}",
        done.stderr
    );
    Ok(())
}

/// A server given a public address (all interfaces) still starts, prints
/// its `listening on` line first, and warns in exactly one line on stderr
/// that other machines can now connect.
pub fn server_warns_on_a_public_address(server: &str, transport: Transport) -> Result<()> {
    server_warns_on_a_public_address_with(server, transport, &[])
}

/// [`server_warns_on_a_public_address`] with `extra` arguments for the server.
pub fn server_warns_on_a_public_address_with(
    server: &str,
    transport: Transport,
    extra: &[&str],
) -> Result<()> {
    let (bound, done) = start_talk_stop_with(server, "0.0.0.0:0", transport, extra)?;
    ensure!(bound.ip().is_unspecified(), "listening on {bound}");
    let warning =
        format!("warning: listening on {bound}: other machines on the network can now connect");
    let warnings: Vec<&str> = done
        .stderr
        .lines()
        .filter(|line| line.starts_with("warning:"))
        .collect();
    ensure!(
        warnings == [warning.as_str()],
        "{server} on {bound}: expected exactly {warning:?}, stderr was {:?}",
        done.stderr
    );
    Ok(())
}
