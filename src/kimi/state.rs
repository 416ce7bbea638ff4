//! The state directory: where each account's current login survives a restart.
//!
//! A 2026 web refresh token rotates on every use and the old one is dead at once
//! (`docs/kimi-protocol.md` §2.5), so a server that forgets the newest one has lost the login.
//! Each account has one file, named by a hash of the token the user gave (never the token
//! itself), written atomically (temporary file, fsync, rename) with mode 0600 in a 0700
//! directory. A directory that cannot be written is no reason to refuse to start: logins are
//! then kept in memory, and the start-up log says that a restart will lose them. The
//! directory's path appears in no log line or error.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::sha256;

/// The kind of record that keeps a login (its file names predate the other kinds).
const LOGIN: &str = "state";

/// What is kept of one account's login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The refresh token to use next: the newest one Kimi gave.
    pub refresh_token: String,
    pub access_token: String,
    /// Unix milliseconds after which the access token is refreshed.
    pub refresh_after_ms: u64,
    /// When Kimi gave this login (Unix milliseconds).
    pub obtained_ms: u64,
    pub user_id: String,
}

/// The state directory, or memory only when it cannot be written.
pub struct StateDir {
    dir: Option<PathBuf>,
    /// A failed write is logged once, not on every refresh.
    warned: AtomicBool,
    /// Makes temporary file names unique between threads.
    counter: AtomicU64,
}

impl StateDir {
    /// Opens (creating it if needed) the directory. The message says what went wrong when it
    /// cannot be used; logins are then kept in memory.
    pub fn open(path: Option<&Path>) -> (StateDir, Option<String>) {
        let (dir, problem) = match path.map(prepare) {
            None => (None, Some("no state directory is configured".to_string())),
            Some(Ok(dir)) => (Some(dir), None),
            Some(Err(error)) => {
                (None, Some(format!("the state directory cannot be written ({})", error.kind())))
            }
        };
        let state = StateDir { dir, warned: AtomicBool::new(false), counter: AtomicU64::new(0) };
        let message = problem.map(|why| {
            format!("{why}: rotated Kimi logins are kept in memory only, and a restart will lose them")
        });
        (state, message)
    }

    /// Memory only.
    #[cfg(test)]
    pub fn memory() -> StateDir {
        StateDir { dir: None, warned: AtomicBool::new(false), counter: AtomicU64::new(0) }
    }

    /// The saved login of the account whose user-given token is `seed`.
    pub fn load(&self, seed: &str) -> Option<Saved> {
        self.load_record(LOGIN, seed)
    }

    /// Saves the login; a failure is logged once (the login is still kept in memory).
    pub fn save(&self, seed: &str, saved: &Saved) {
        self.save_record(LOGIN, seed, saved)
    }

    /// A record of `kind` kept for `key` (what the server learned of an account), if any.
    pub fn load_record<T: DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let bytes = fs::read(self.file(kind, key)?).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Saves a record of `kind` for `key`; a failure is logged once (the caller keeps it in
    /// memory).
    pub fn save_record<T: Serialize>(&self, kind: &str, key: &str, value: &T) {
        let Some(path) = self.file(kind, key) else { return };
        if let Err(error) = self.write_atomically(&path, value)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "kimi: cannot save to the state directory ({}): what it would keep is kept in memory, \
                 and a restart will lose it",
                error.kind()
            );
        }
    }

    /// The file of a record: a hash of its kind and key, so that no name shows a token.
    fn file(&self, kind: &str, key: &str) -> Option<PathBuf> {
        let name = sha256::hex(format!("kimi-free-api {kind}\0{key}").as_bytes());
        Some(self.dir.as_ref()?.join(format!("{}.json", &name[..32])))
    }

    fn write_atomically<T: Serialize>(&self, path: &Path, saved: &T) -> io::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let temp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            file.write_all(&serde_json::to_vec(saved).map_err(io::Error::other)?)?;
            file.sync_all()?;
            fs::rename(&temp, path)?;
            // The rename itself is durable once the directory is synced.
            File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

/// Creates the directory (0700) if needed, tightens an existing one we own, and proves that a
/// file can be written in it.
fn prepare(path: &Path) -> io::Result<PathBuf> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    let _ = fs::set_permissions(path, Permissions::from_mode(0o700));
    let probe = path.join(format!(".probe-{}", std::process::id()));
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&probe)?;
    fs::remove_file(&probe)?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kimi-state-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn saved(refresh: &str) -> Saved {
        Saved {
            refresh_token: refresh.into(),
            access_token: "a".into(),
            refresh_after_ms: 7,
            obtained_ms: 1,
            user_id: "u".into(),
        }
    }

    #[test]
    fn saves_and_loads_under_a_hashed_name_with_private_modes() {
        let dir = temp_dir("roundtrip");
        let (state, problem) = StateDir::open(Some(&dir));
        assert_eq!(problem, None);
        assert_eq!(state.load("seed-token"), None);
        state.save("seed-token", &saved("rotated-1"));
        state.save("seed-token", &saved("rotated-2"));
        assert_eq!(state.load("seed-token"), Some(saved("rotated-2")));
        assert_eq!(state.load("other-token"), None);
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
        assert!(!names[0].contains("seed") && names[0].ends_with(".json"));
        assert_eq!(fs::metadata(dir.join(&names[0])).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_directory_means_memory_only_and_says_so_without_the_path() {
        let file = temp_dir("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let (state, problem) = StateDir::open(Some(&file.join("state")));
        let problem = problem.unwrap();
        assert!(problem.contains("restart will lose"), "{problem}");
        assert!(!problem.contains(file.to_str().unwrap()), "the path is not shown: {problem}");
        state.save("seed", &saved("r"));
        assert_eq!(state.load("seed"), None);
        fs::remove_file(&file).unwrap();
    }
}
