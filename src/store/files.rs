//! Files that hold secrets on disk — the data folder, the SQLite database (with its `-wal`
//! and `-shm`), mail written as `.eml` files (unlock links) — readable by this process's user
//! only: folders 0700, files 0600, set explicitly rather than left to the umask.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) as 0700, or narrows an existing one to 0700: a folder
/// of ours (the data folder, the mail folder).
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    narrow(dir, DIR_MODE)
}

/// Creates `dir` as 0700 when it is missing; an existing folder (perhaps not ours alone, e.g.
/// the parent of a database path an operator chose) is left as it is.
pub fn create_private_dir_if_missing(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    ensure_private_dir(dir)
}

/// Creates `file` empty as 0600 when it is missing, or narrows it to 0600.
pub fn ensure_private_file(file: &Path) -> io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(file)
    {
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    narrow(file, FILE_MODE)
}

/// Narrows `file` to 0600 if it exists.
pub fn narrow_if_present(file: &Path) -> io::Result<()> {
    match narrow(file, FILE_MODE) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Writes `bytes` to `file` (replacing it) as 0600.
pub async fn write_private_file(file: &Path, bytes: &[u8]) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(file)
        .await?;
    // A file left by an earlier attempt keeps its mode through `open`.
    out.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .await?;
    out.write_all(bytes).await?;
    out.flush().await
}

/// Sets `mode` unless the permission bits already are exactly that. A file of another user
/// (an operator's command run under another account) cannot be changed: said, not fatal.
fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current == mode {
        return Ok(());
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{current:o}"),
                "cannot make it private ({mode:o}): not its owner"
            );
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn folders_and_files_are_private_whatever_they_were() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let mail = data.join("mail");
        ensure_private_dir(&mail).unwrap();
        assert_eq!((mode(&data), mode(&mail)), (0o700, 0o700));
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "narrowed");

        let db = data.join("gotthard.db");
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600, "narrowed");
        narrow_if_present(&data.join("gotthard.db-wal")).unwrap();

        let eml = mail.join("x.eml");
        std::fs::write(&eml, "old").unwrap();
        std::fs::set_permissions(&eml, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private_file(&eml, b"new").await.unwrap();
        assert_eq!(mode(&eml), 0o600);
        assert_eq!(std::fs::read_to_string(&eml).unwrap(), "new");

        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir_if_missing(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755, "not ours alone: untouched");
    }
}
