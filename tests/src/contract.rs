//! The command-line contract every lesson binary follows (CONVENTIONS §2),
//! checked the same way for every lesson. Each lesson's test file calls
//! these from tests of its own, so a failure names the lesson.

use anyhow::{Result, ensure};
use predicates::prelude::*;

use crate::{Server, cmd, unused_addr};

/// `--help` says what the binary does, shows its usage and its default
/// address, and exits 0.
pub fn help_works(bin: &str, default_addr: &str) -> Result<()> {
    cmd(bin)?
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
    Ok(())
}

/// A bad address is one line on stderr naming the bad value, exit status 2,
/// nothing on stdout, no panic.
pub fn bad_address_is_refused(bin: &str) -> Result<()> {
    for bad in [
        "nowhere",
        "9001",
        "127.0.0.1",
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
            !stderr.contains("panicked"),
            "{bin} {bad}: panicked: {stderr:?}"
        );
    }
    Ok(())
}

/// A client with no server says which address it tried and why, suggests
/// starting the server, exits non-zero, and does not panic.
pub fn client_explains_no_server(client: &str, server: &str) -> Result<()> {
    let addr = unused_addr()?.to_string();
    let assert = cmd(client)?
        .arg(&addr)
        .write_stdin("hello\n")
        .assert()
        .failure()
        .stderr(predicate::str::contains(&addr))
        .stderr(predicate::str::contains(format!("cargo run -p {server}")))
        .stderr(predicate::str::contains("panicked").not());
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    ensure!(
        stderr.lines().count() == 1,
        "{client}: not one line: {stderr:?}"
    );
    Ok(())
}

/// A server given a public address (all interfaces) still starts, prints
/// its `listening on` line first, and warns in one line on stderr that other
/// machines can now connect.
pub fn server_warns_on_a_public_address(server: &str) -> Result<()> {
    let started = Server::start_on(server, "0.0.0.0:0", &[])?;
    ensure!(
        started.addr.ip().is_unspecified(),
        "listening on {}",
        started.addr
    );
    let done = started.kill()?;
    let warnings: Vec<&str> = done
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    ensure!(
        warnings.len() == 1,
        "expected one warning: {:?}",
        done.stderr
    );
    ensure!(warnings[0].contains("other machines"), "{warnings:?}");
    Ok(())
}
