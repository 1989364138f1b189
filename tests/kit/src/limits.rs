//! Running a server where the machine, not a peer, runs out: a child process
//! under a small limit of threads or open files, set with `setrlimit` in the
//! child between `fork` and `exec`, so that the test process itself keeps its
//! own limits.
//!
//! ```text
//! let mut command = Command::new(bin_path(SERVER)?);
//! command.args(["127.0.0.1:0"]);
//! if !Limit::Threads(24).apply(&mut command)? { return Ok(()); }
//! let server = Server::start_command(command)?;
//! ```
//!
//! `RLIMIT_NPROC` counts every process and thread of one user, all over the
//! machine, and root is exempt from it. So [`Limit::Threads`] also runs the
//! child as a user of its own: a fresh user id that no other process has, so
//! that the count starts at one (the server itself) and two tests never share
//! one. Changing user needs root; elsewhere, and on systems without these
//! limits, `apply` prints one line, `skipped: FILE::TEST needs ...`, and the
//! test returns. That holds with `CI` set too: unlike a missing tool, root
//! cannot be installed.

use std::process::Command;

use anyhow::Result;

/// A limit of the operating system, for one child process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// At most this many processes and threads (`RLIMIT_NPROC`), the server's
    /// main thread included, for a user of the child's own.
    Threads(u64),
    /// At most this many open file descriptors (`RLIMIT_NOFILE`): sockets,
    /// files, and stdin, stdout and stderr.
    OpenFiles(u64),
}

impl Limit {
    /// Makes `command` start under this limit. `Ok(false)` means it cannot be
    /// set here: one `skipped:` line has been printed, and the test should
    /// return at once.
    pub fn apply(self, command: &mut Command) -> Result<bool> {
        imp::apply(self, command)
    }
}

/// Opens a folder the child must write in (the server's `--dir`, say) to
/// every user, since under [`Limit::Threads`] the child runs as a user of its
/// own. (Elsewhere than Unix, a no-op.)
pub fn open_to_any_user(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};

    use anyhow::Result;

    use super::Limit;

    pub fn apply(limit: Limit, command: &mut Command) -> Result<bool> {
        let (resource, value) = match limit {
            Limit::Threads(n) => (libc::RLIMIT_NPROC, n),
            Limit::OpenFiles(n) => (libc::RLIMIT_NOFILE, n),
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let user = match limit {
            Limit::Threads(_) if !root => {
                crate::tools::skip(
                    "root, to run the server as a user of its own under RLIMIT_NPROC \
                     (run the tests as root, or in a container)",
                );
                return Ok(false);
            }
            Limit::Threads(_) => Some(fresh_user()),
            Limit::OpenFiles(_) => None,
        };
        let rlim = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: the closure runs in the child between fork and exec, where
        // only async-signal-safe calls are allowed: setrlimit, setgroups,
        // setgid and setuid are plain system calls, and nothing allocates.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(resource, &rlim) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(id) = user {
                    // The group first: once the user is no longer root, it
                    // may not change its groups.
                    if libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(id) != 0
                        || libc::setuid(id) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        Ok(true)
    }

    /// A user id (and group id) that no account and no other test uses: far
    /// above the ids systems give to accounts, different for every process
    /// and every call.
    fn fresh_user() -> u32 {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 64;
        2_000_000 + (std::process::id() % 100_000) * 64 + n
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::process::Command;

    use anyhow::Result;

    use super::Limit;

    pub fn apply(limit: Limit, _command: &mut Command) -> Result<bool> {
        crate::tools::skip(&format!(
            "Linux, to run a server under {limit:?} (setrlimit in the child)"
        ));
        Ok(false)
    }
}
