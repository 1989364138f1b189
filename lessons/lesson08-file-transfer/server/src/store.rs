//! Where the files live, and how an upload becomes a file without ever being
//! half a file.
//!
//! Every upload is written to a file of its own in `DIR/.partial/`, named
//! after what the client promised (sha256, size, name). Only when all of its
//! bytes have arrived and hash to the promised sha256 is it flushed to the
//! disk (`sync_all`, the fsync call) and renamed over `DIR/NAME`. A rename
//! within one folder tree on one disk is atomic: anyone opening `NAME` gets
//! the old file or the new one, never a mix. An upload that stops half-way
//! stays in `.partial/`, where `list` and `get` never look, and the same
//! `put` later carries on where it stopped.

// ANCHOR: imports
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use lesson08_header_server::names::{check_name, open_stored};
// ANCHOR_END: imports

// ANCHOR: store
/// An interrupted upload is kept this long after its last byte arrived; the
/// server removes older ones when it starts.
pub const KEEP_PARTIALS: Duration = Duration::from_secs(24 * 60 * 60);

/// The storage folder, shared by every connection's thread.
pub struct Store {
    dir: PathBuf,
    partials: PathBuf,
    max_size: u64,
    quota: u64,
    /// The uploads in progress: partial file name -> the size it will have.
    /// It is the lock that keeps two clients from writing one partial file.
    busy: Mutex<HashMap<String, u64>>,
    /// The sha256 of each stored file, by name, with the size and time of
    /// change it was computed for, so that `list` does not reread every file.
    hashes: Mutex<HashMap<String, (u64, SystemTime, String)>>,
}

/// A stored file, as `list` and a finished `put` describe it.
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

impl Store {
    /// Creates `dir` and `dir/.partial` if needed, and removes the partial
    /// uploads older than [`KEEP_PARTIALS`]. Returns the store and how many
    /// partials it removed.
    pub fn open(dir: &Path, max_size: u64, quota: u64) -> io::Result<(Store, usize)> {
        let partials = dir.join(".partial");
        fs::create_dir_all(&partials)?;
        let mut removed = 0;
        for entry in fs::read_dir(&partials)? {
            let entry = entry?;
            let age = entry.metadata()?.modified()?.elapsed().unwrap_or_default();
            if age > KEEP_PARTIALS {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        let store = Store {
            dir: dir.to_path_buf(),
            partials,
            max_size,
            quota,
            busy: Mutex::new(HashMap::new()),
            hashes: Mutex::new(HashMap::new()),
        };
        Ok((store, removed))
    }

    /// The folder, for the start-up message.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
// ANCHOR_END: store

// ANCHOR: begin-put
/// One upload in progress. Dropping it (the connection broke) keeps the bytes
/// that arrived in `.partial/` and frees the partial for the next `put`.
pub struct Upload<'a> {
    store: &'a Store,
    key: String,
    name: String,
    size: u64,
    sha256: String,
    file: File,
    hasher: Sha256,
    written: u64,
}

impl Store {
    /// Checks a `put` and opens its partial file. `Ok` holds the upload,
    /// whose [`Upload::offset`] says how many bytes are already here; `Err`
    /// is the refusal to send to the client, before any byte of the body.
    pub fn begin_put(&self, name: &str, size: u64, sha256: &str) -> Result<Upload<'_>, String> {
        check_name(name)?;
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256 must be 64 hexadecimal digits".to_string());
        }
        let sha256 = sha256.to_ascii_lowercase();
        if size > self.max_size {
            return Err(format!(
                "{size} bytes is over the limit of {} bytes per file",
                self.max_size
            ));
        }
        // The partial's name says what it will become: the same name, size
        // and hash find the same partial, anything else starts afresh. The
        // name itself is hashed: it may be 255 bytes long already.
        let key = format!(
            "{sha256}-{size}-{}",
            &format!("{:x}", Sha256::digest(name))[..16]
        );
        let path = self.partials.join(&key);
        let have = fs::metadata(&path).map_or(0, |meta| meta.len());
        {
            let mut busy = lock(&self.busy);
            if busy.contains_key(&key) {
                return Err(format!(
                    "the same file is being uploaded as {name:?} right now; try again when that ends"
                ));
            }
            let used = self
                .bytes_used(&busy)
                .map_err(|err| format!("cannot count the disk: {err}"))?;
            // Saturating: sizes near 2^64 must be refused, not wrap around.
            if used.saturating_sub(have).saturating_add(size) > self.quota {
                return Err(format!(
                    "the store holds {used} of its {} bytes; {size} more do not fit",
                    self.quota
                ));
            }
            busy.insert(key.clone(), size);
        }
        let opened = OpenOptions::new()
            .create(true)
            .truncate(false) // keep what an earlier try wrote
            .read(true)
            .write(true)
            .open(&path);
        let file = match opened {
            Ok(file) => file,
            Err(err) => {
                lock(&self.busy).remove(&key); // no `Upload` yet to give it back
                return Err(format!("cannot open a partial file: {err}"));
            }
        };
        // From here on `upload` owns the key: whatever happens, its `drop`
        // gives the key back.
        let mut upload = Upload {
            store: self,
            key,
            name: name.to_string(),
            size,
            sha256,
            file,
            hasher: Sha256::new(),
            written: 0,
        };
        upload
            .hash_what_is_here()
            .map_err(|err| format!("cannot read the partial file: {err}"))?;
        Ok(upload)
    }

    /// Bytes on the disk: every stored file and idle partial, plus the full
    /// size of every upload in progress.
    fn bytes_used(&self, busy: &HashMap<String, u64>) -> io::Result<u64> {
        let mut used = busy
            .values()
            .fold(0u64, |sum, size| sum.saturating_add(*size));
        for folder in [&self.dir, &self.partials] {
            for entry in fs::read_dir(folder)? {
                let entry = entry?;
                let in_progress = busy.contains_key(entry.file_name().to_string_lossy().as_ref());
                if entry.file_type()?.is_file() && !in_progress {
                    used = used.saturating_add(entry.metadata()?.len());
                }
            }
        }
        Ok(used)
    }
}
// ANCHOR_END: begin-put

// ANCHOR: upload
impl Upload<'_> {
    /// How many bytes an earlier, interrupted `put` already delivered.
    pub fn offset(&self) -> u64 {
        self.written
    }

    /// Reads the bytes already in the partial into the hash, so that the
    /// hash at the end covers the whole file, then stands at their end.
    fn hash_what_is_here(&mut self) -> io::Result<()> {
        let have = self.file.metadata()?.len();
        if have > self.size {
            // More than the file will have: not ours to trust. Start afresh.
            self.file.set_len(0)?;
            return Ok(());
        }
        let copied = io::copy(&mut (&mut self.file).take(have), &mut self.hasher)?;
        self.written = copied;
        self.file.seek(SeekFrom::Start(copied))?;
        Ok(())
    }

    /// Appends bytes of the body, hashing them on the way.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// All bytes are here: check the hash, flush to the disk, rename over
    /// `NAME`, flush the folder. Only then is the file stored.
    pub fn finish(mut self) -> Result<FileInfo, String> {
        let path = self.store.partials.join(&self.key);
        let got = format!("{:x}", std::mem::take(&mut self.hasher).finalize());
        if self.written != self.size || got != self.sha256 {
            // Not what was promised: these bytes must not be resumed either.
            let _ = fs::remove_file(&path);
            return Err(format!(
                "the {} bytes received hash to {got}, not to {}; nothing was stored",
                self.written, self.sha256
            ));
        }
        let stored = || -> io::Result<SystemTime> {
            // fsync: the bytes are on the disk before a name points at them.
            self.file.sync_all()?;
            let changed = self.file.metadata()?.modified()?;
            // The atomic step. A file already called NAME is replaced whole.
            fs::rename(&path, self.store.dir.join(&self.name))?;
            // fsync the folder too, or after a power cut the rename itself
            // may be lost. (Windows cannot open a folder as a file.)
            #[cfg(unix)]
            File::open(&self.store.dir)?.sync_all()?;
            Ok(changed)
        };
        let changed = stored().map_err(|err| format!("cannot store the file: {err}"))?;
        let entry = (self.size, changed, self.sha256.clone());
        lock(&self.store.hashes).insert(self.name.clone(), entry);
        Ok(FileInfo {
            name: self.name.clone(),
            size: self.size,
            sha256: self.sha256.clone(),
        })
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        lock(&self.store.busy).remove(&self.key);
    }
}
// ANCHOR_END: upload

// ANCHOR: get
impl Store {
    /// Opens stored file `name` to send it from `offset`: the open file,
    /// standing at `offset`, with its size and sha256. `Err` is the refusal.
    pub fn open_for_get(&self, name: &str, offset: u64) -> Result<(File, u64, String), String> {
        // Step 1's careful open: a plain file of the folder, or a refusal.
        let mut file = open_stored(&self.dir, name)?;
        let (size, sha256) = self
            .describe(name, &mut file)
            .map_err(|err| format!("cannot read {name:?}: {err}"))?;
        if offset > size {
            return Err(format!(
                "offset {offset} is past the end of {name:?} ({size} bytes)"
            ));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|err| format!("cannot read {name:?}: {err}"))?;
        Ok((file, size, sha256))
    }

    /// The size and sha256 of an open stored file: remembered if the file
    /// did not change since, else read through once.
    fn describe(&self, name: &str, file: &mut File) -> io::Result<(u64, String)> {
        let meta = file.metadata()?;
        let (size, changed) = (meta.len(), meta.modified()?);
        if let Some((s, c, sha)) = lock(&self.hashes).get(name) {
            if (*s, *c) == (size, changed) {
                return Ok((size, sha.clone()));
            }
        }
        let mut hasher = Sha256::new();
        io::copy(file, &mut hasher)?;
        let sha256 = format!("{:x}", hasher.finalize());
        lock(&self.hashes).insert(name.to_string(), (size, changed, sha256.clone()));
        Ok((size, sha256))
    }

    /// Every stored file, sorted by name. Partials, folders, symlinks and
    /// names a client could not have given are left out.
    pub fn list(&self) -> io::Result<Vec<FileInfo>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not UTF-8: no client can have stored it
            };
            if check_name(&name).is_err() || !entry.file_type()?.is_file() {
                continue;
            }
            let mut file = match File::open(entry.path()) {
                Ok(file) => file,
                Err(err) if err.kind() == ErrorKind::NotFound => continue, // just replaced
                Err(err) => return Err(err),
            };
            let (size, sha256) = self.describe(&name, &mut file)?;
            files.push(FileInfo { name, size, sha256 });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }
}
// ANCHOR_END: get

// ANCHOR: helpers
/// Locks a mutex even if a thread panicked while holding it: the maps stay
/// usable, and one broken connection does not stop the others.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
// ANCHOR_END: helpers
