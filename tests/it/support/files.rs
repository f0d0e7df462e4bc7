//! Files the tests make and the repository they read: temporary files and
//! directories with names unique to this process and call, removed when
//! dropped, and the repository root. Nothing here starts a process or opens
//! a socket.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository root (where Cargo.toml is).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Reads `rel` (a path under the repository root) as text.
pub fn read_repo(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A fresh path under the temp dir, unique to this process and call.
pub fn temp_path(what: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("comet-test-{what}-{}-{n}", std::process::id()))
}

/// A file holding some text, removed when dropped.
pub struct TempFile(PathBuf);

impl TempFile {
    /// Writes `text` to a fresh file named after `what`, with `ext`.
    pub fn new(what: &str, ext: &str, text: &str) -> TempFile {
        let path = temp_path(what).with_extension(ext);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        TempFile(path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The file as text (temp paths are UTF-8 here).
    pub fn path_str(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A directory removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory, readable by everyone (nginx's workers run
    /// as an unprivileged user when the tests run as root).
    pub fn new(what: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_path(what);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod the temp dir");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
