//! Replacing a file so that a crash leaves either the old one or the new one: the new content
//! goes to a temp file beside the target, is fsynced and renamed over it, and the directory is
//! fsynced so that the rename itself survives. Used by checkpoints and journal compaction.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// `path` with `suffix` added to its file name: a temp file in the same directory (a rename
/// within one file system is atomic).
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Fsyncs the directory that holds `path`, after a rename or link into it.
pub fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_file_sits_beside_its_target() {
        assert_eq!(
            beside(Path::new("/var/lib/x/table.ckpt"), ".tmp"),
            Path::new("/var/lib/x/table.ckpt.tmp")
        );
        assert_eq!(
            beside(Path::new("j.log"), ".compact.tmp"),
            Path::new("j.log.compact.tmp")
        );
        let dir = tempfile::tempdir().unwrap();
        sync_dir_of(&dir.path().join("any")).unwrap();
    }
}
