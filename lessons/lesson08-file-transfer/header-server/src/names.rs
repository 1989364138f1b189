//! Which names a client may store a file under, and how a stored file is
//! opened by its name.
//!
//! The name arrives from the network, so it is hostile until checked. A name
//! that is allowed here can only ever mean one file directly inside the
//! storage folder: no folder part, nothing that climbs out (`..`), nothing
//! the operating system would read as something else, on Linux, macOS or
//! Windows, so that a store can be copied from one to another.

// ANCHOR: names-imports
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::path::Path;
// ANCHOR_END: names-imports

// ANCHOR: check-name
/// The longest name, in bytes: what Linux, macOS and Windows allow for one
/// file name.
pub const MAX_NAME: usize = 255;

/// Characters Windows does not allow in a name. `:` would even open a hidden
/// "stream" of another file (`a:b` is the stream `b` of file `a`).
const NOT_ON_WINDOWS: &[char] = &['<', '>', ':', '"', '|', '?', '*'];

/// Names that Windows reads as devices, whatever extension follows:
/// `nul.txt` is nothing at all, `COM1.log` a serial port.
const DEVICES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Checks that `name` is one plain file name, the same file on every system,
/// or says why it is not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "the name is {} bytes long, over the limit of {MAX_NAME}",
            name.len()
        ));
    }
    // `/` and `\` separate folders (`\` on Windows), so `../../etc/passwd` and
    // `a\b` are paths, not names. NUL ends a string for the system, and control
    // characters (a newline, an escape) would garble every log and listing.
    if let Some(bad) = name
        .chars()
        .find(|&c| c == '/' || c == '\\' || c.is_control() || NOT_ON_WINDOWS.contains(&c))
    {
        return Err(format!("the name contains {bad:?}, which is not allowed"));
    }
    // `.` and `..` are the folder itself and its parent. Every other name that
    // starts with a dot is kept for the server's own use (`.partial/`, the
    // interrupted uploads), so no client can reach into it.
    if name.starts_with('.') {
        return Err("a name may not start with '.'".to_string());
    }
    // Windows drops a dot or a space at the end: `a.` would be `a`.
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("a name may not end with '.' or ' '".to_string());
    }
    // The part before the first dot, as Windows compares it.
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    if DEVICES
        .iter()
        .any(|device| device.eq_ignore_ascii_case(stem))
    {
        return Err(format!("{stem:?} is the name of a device on Windows"));
    }
    Ok(())
}
// ANCHOR_END: check-name

// ANCHOR: open-stored
/// Opens the stored file `name` in `dir` for reading. `Err` is the refusal
/// to send: no such file, or one that is not a plain file of the folder.
pub fn open_stored(dir: &Path, name: &str) -> Result<File, String> {
    check_name(name)?;
    let missing = || format!("there is no file called {name:?}");
    // Only "not found" means missing; out of descriptors, say, is not.
    let failed = |err: io::Error| match err.kind() {
        ErrorKind::NotFound => missing(),
        _ => format!("cannot open {name:?}: {err}"),
    };
    let path = dir.join(name);
    // `symlink_metadata` looks at the name itself, not at what a symlink
    // points to: a symlink or a folder is not a stored file, and a symlink
    // must not lead us out of the folder.
    let meta = fs::symlink_metadata(&path).map_err(failed)?;
    if !meta.is_file() {
        return Err(missing());
    }
    let file = File::open(&path).map_err(failed)?;
    #[cfg(unix)]
    {
        // Was the name swapped for a symlink between the check and the
        // open? Then the file we opened is not the one we checked.
        use std::os::unix::fs::MetadataExt;
        let opened = file.metadata().map_err(failed)?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(missing());
        }
    }
    Ok(file)
}
// ANCHOR_END: open-stored
