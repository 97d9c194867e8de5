//! Durability helpers for files other rooms point at (a leaf: media and store both use them).
//!
//! Order for a voicemail: write the file, sync it, rename it to its final name, sync its
//! directory so the name survives a crash; then commit the ticket row that names it, then page.

use std::fs::File;
use std::io;
use std::path::Path;

/// Flushes `path`'s data and its directory entry to disk.
pub fn fsync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    fsync_dir_of(path)
}

/// Flushes the directory holding `path` (a rename or a new name in it) to disk.
pub fn fsync_dir_of(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn syncs_a_file_and_refuses_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vm.wav");
        std::fs::write(&p, b"RIFF").unwrap();
        super::fsync_file(&p).unwrap();
        super::fsync_dir_of(&p).unwrap();
        assert!(super::fsync_file(&dir.path().join("absent.wav")).is_err());
    }
}
