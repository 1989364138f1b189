//! Unix domain sockets (lesson 12): a server listening on a socket file,
//! and connections to one made by the test itself, with timeouts.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::{Proc, TIMEOUT, bin_path};

/// A server started with `--unix PATH`, once it printed `listening on PATH`.
pub struct UnixServer {
    pub proc: Proc,
    pub path: PathBuf,
}

impl UnixServer {
    /// Starts server `name` with `--unix PATH` (plus `extra` arguments).
    pub fn start(name: &str, path: &Path, extra: &[&str]) -> Result<UnixServer> {
        let mut command = Command::new(bin_path(name)?);
        command.arg("--unix").arg(path).args(extra);
        UnixServer::start_command(command, path)
    }

    /// Starts `command`, which must listen on `path` (a Python twin, say).
    pub fn start_command(command: Command, path: &Path) -> Result<UnixServer> {
        let mut proc = Proc::spawn_command(command)?;
        let first = proc.next_line()?;
        let expected = format!("listening on {}", path.display());
        ensure!(
            first == expected,
            "expected {expected:?} as the first line, got {first:?}"
        );
        Ok(UnixServer {
            proc,
            path: path.to_path_buf(),
        })
    }

    /// The path as text, to pass to a client after `--unix`.
    pub fn path_arg(&self) -> String {
        self.path.display().to_string()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> Result<String> {
        self.proc.wait_for(needle)
    }
}

/// A connection to the socket file `path`, with read and write timeouts so
/// that no read can hang the test.
pub fn connect_unix(path: &Path) -> Result<UnixStream> {
    let stream =
        UnixStream::connect(path).with_context(|| format!("connecting to {}", path.display()))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}
