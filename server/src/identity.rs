//! The node's Ed25519 identity and the files around it: the data dir (created 0700) and the
//! key in it, `identity.key` (a C2SP private key string, so standard signed-note tools can
//! read it), created on first start and reused after.
//!
//! The key is the one secret a node holds: whoever reads it can sign this origin's list. So:
//! - it is created with `O_CREAT|O_EXCL|O_NOFOLLOW` and mode 0600 in a temporary file (a
//!   stale one from a crash, whatever its mode or if it is a symbolic link, is removed first,
//!   never reused), written, fsynced, renamed into place, and the directory fsynced;
//! - an existing key is opened with `O_NOFOLLOW` and refused if it is a symbolic link, not a
//!   regular file, not owned by the node's user, or readable or writable by group or others;
//! - a missing key next to a log it signed is never regenerated ([`IdentityError::KeyMissing`]):
//!   a new key would go on appending to the same origin's log under a key no peer trusts.
//!
//! The data dir is created 0700 (and `db/`, the store, too). An existing data dir with group
//! or other permissions is only warned about: orchestrators create volume roots the node does
//! not own with such modes (a Kubernetes `emptyDir` is 0777, an `fsGroup` volume 2775), and
//! what needs protecting inside it is created private by the node itself.

use redline_proto::checkpoint::{CheckpointError, OriginSigner};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// File name of the identity inside the data dir.
pub const KEY_FILE: &str = "identity.key";

/// Sub-directory of the data dir holding the sled store.
pub const STORE_DIR: &str = "db";

/// Largest key file read (a C2SP private key string is ~100 bytes).
const MAX_KEY_FILE: u64 = 4096;

/// The identity could not be loaded or created.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("reading or writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid private key: {source}")]
    Parse {
        path: PathBuf,
        source: CheckpointError,
    },
    #[error("{path} holds the key of origin {found:?}, but this node is configured as {expected:?}; point --data-dir elsewhere or fix --origin")]
    WrongOrigin {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("origin name {0:?} is not valid: {1}")]
    BadName(String, CheckpointError),
    #[error("{path} is a symbolic link; the identity key is only read from a regular file in the data dir (replace the link with the file it points to, mode 0600)")]
    Symlink { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} has mode {mode:04o}: the private key is readable or writable by group or others; if nobody else can have read it, `chmod 600 {path}`, otherwise treat the key as leaked")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} is owned by uid {owner}, not by the node's user (uid {euid}); `chown` it to the node's user")]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("{path} is missing, but the store in {} holds the log of origin {origin:?} (size {size}) it signed; refusing to start with a new key, which would go on appending to that log under a key no peer trusts. Restore {KEY_FILE} from your backup into {}; or, to give up this log, start a new origin: another --origin name (and new [[trust]] entries at your peers) or an empty --data-dir", .data_dir.display(), .data_dir.display())]
    KeyMissing {
        path: PathBuf,
        data_dir: PathBuf,
        origin: String,
        size: u64,
    },
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `data_dir` (and its store directory) with mode 0700 if missing; warns when an
/// existing one is accessible to group or others (see the module documentation).
pub fn prepare_data_dir(data_dir: &Path) -> Result<(), IdentityError> {
    for dir in [data_dir.to_owned(), data_dir.join(STORE_DIR)] {
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => warn_if_open(&dir, &m),
            Ok(_) => {
                return Err(IdentityError::Io {
                    path: dir.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "exists and is not a directory",
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => private_dir(&dir)?,
            Err(e) => return Err(io_at(&dir)(e)),
        }
    }
    Ok(())
}

#[cfg(unix)]
fn private_dir(dir: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))
}

#[cfg(not(unix))]
fn private_dir(dir: &Path) -> Result<(), IdentityError> {
    std::fs::create_dir_all(dir).map_err(io_at(dir))
}

#[cfg(unix)]
fn warn_if_open(dir: &Path, m: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:04o}"),
            "the data dir is accessible to group or others (the node creates it 0700); \
             `chmod 700` it unless your volume needs these modes"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_open(_dir: &Path, _m: &std::fs::Metadata) {}

/// Loads the identity for `origin` from `data_dir`, creating it when it is missing, before
/// the node first starts (there is no log it could have signed). Returns the signer and
/// whether it was just created. A node opening its store uses [`open`] instead.
pub fn load_or_create(
    data_dir: &Path,
    origin: &str,
) -> Result<(OriginSigner, bool), IdentityError> {
    open(data_dir, origin, None)
}

/// Loads the identity for `origin` from `data_dir`. When the key is missing it is created,
/// unless `signed_log` is the size of this origin's log in the store: a log signed by a key
/// that is gone is refused with [`IdentityError::KeyMissing`].
pub fn open(
    data_dir: &Path,
    origin: &str,
    signed_log: Option<u64>,
) -> Result<(OriginSigner, bool), IdentityError> {
    let path = data_dir.join(KEY_FILE);
    if let Some(signer) = load(&path, origin)? {
        return Ok((signer, false));
    }
    if let Some(size) = signed_log {
        return Err(IdentityError::KeyMissing {
            path,
            data_dir: data_dir.to_owned(),
            origin: origin.to_owned(),
            size,
        });
    }
    let signer =
        OriginSigner::generate(origin).map_err(|e| IdentityError::BadName(origin.to_owned(), e))?;
    create(data_dir, &path, &signer)?;
    Ok((signer, true))
}

/// Reads the key at `path`, or `None` when there is none.
fn load(path: &Path, origin: &str) -> Result<Option<OriginSigner>, IdentityError> {
    let io = io_at(path);
    // `symlink_metadata` names the problem; O_NOFOLLOW below closes the race after it.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(IdentityError::Symlink {
                path: path.to_owned(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    no_follow(&mut opts);
    let file = opts.open(path).map_err(|e| {
        if is_symlink_refusal(&e) {
            IdentityError::Symlink {
                path: path.to_owned(),
            }
        } else {
            io(e)
        }
    })?;
    let m = file.metadata().map_err(&io)?;
    if !m.is_file() {
        return Err(IdentityError::NotAFile {
            path: path.to_owned(),
        });
    }
    check_private(path, &m)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(&io)?;
    let signer = OriginSigner::parse(text.trim()).map_err(|source| IdentityError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if signer.public().name() != origin {
        return Err(IdentityError::WrongOrigin {
            path: path.to_owned(),
            found: signer.public().name().to_owned(),
            expected: origin.to_owned(),
        });
    }
    Ok(Some(signer))
}

/// Writes a new key: `identity.key.tmp` created exclusively (after removing a stale one),
/// 0600, not through a symbolic link; fsynced; renamed to `path`; the directory fsynced. A
/// crash at any point leaves either no key or the whole key.
fn create(data_dir: &Path, path: &Path, signer: &OriginSigner) -> Result<(), IdentityError> {
    let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
    // A stale tmp (from a crash, or planted) is never written through: it may be a link
    // elsewhere or have any mode. `remove_file` removes a link itself, not its target.
    let mut f = create_private(&tmp).map_err(io_at(&tmp))?;
    // The umask can only remove bits from 0600; check anyway, before the key is written.
    check_private(&tmp, &f.metadata().map_err(io_at(&tmp))?)?;
    writeln!(f, "{}", signer.private_key()).map_err(io_at(&tmp))?;
    f.sync_all().map_err(io_at(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_at(path))?;
    sync_dir(data_dir)
}

/// Creates `path` for writing: exclusively (after removing a stale file or link of that name),
/// mode 0600, never through a symbolic link. For the key's temporary file and for other files
/// of the data dir that hold what only the node may read (the catalog snapshot holds every
/// perceptual hash).
pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::warn!(path = %path.display(), "removed a stale temporary file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    no_follow(&mut opts);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Fsyncs a directory, so a rename inside it survives a crash.
pub(crate) fn sync_directory(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir).and_then(|d| d.sync_all())
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), IdentityError> {
    sync_directory(dir).map_err(io_at(dir))
}

#[cfg(unix)]
fn no_follow(opts: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    opts.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
}

#[cfg(not(unix))]
fn no_follow(_opts: &mut std::fs::OpenOptions) {}

/// `open` with `O_NOFOLLOW` on a symbolic link fails with `ELOOP`.
fn is_symlink_refusal(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// The key file must be the node user's alone.
#[cfg(unix)]
fn check_private(path: &Path, m: &std::fs::Metadata) -> Result<(), IdentityError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let euid = rustix::process::geteuid().as_raw();
    if m.uid() != euid {
        return Err(IdentityError::Owner {
            path: path.to_owned(),
            owner: m.uid(),
            euid,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _m: &std::fs::Metadata) -> Result<(), IdentityError> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_once_with_mode_0600_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create(dir.path(), "uk.example").unwrap();
        assert!(created);
        let (b, created) = load_or_create(dir.path(), "uk.example").unwrap();
        assert!(!created);
        assert_eq!(a.public(), b.public());
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
        assert!(matches!(
            load_or_create(dir.path(), "kr.example"),
            Err(IdentityError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn a_stale_world_readable_tmp_is_replaced_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(format!("{KEY_FILE}.tmp"));
        std::fs::write(&tmp, "half a key").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
        load_or_create(dir.path(), "uk.example").unwrap();
        assert_eq!(mode(&dir.path().join(KEY_FILE)), 0o600);
        assert!(!tmp.exists());
    }

    #[test]
    fn a_tmp_symlink_is_removed_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::os::unix::fs::symlink(&outside, data.join(format!("{KEY_FILE}.tmp"))).unwrap();
        load_or_create(&data, "uk.example").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"");
        assert!(!std::fs::symlink_metadata(data.join(KEY_FILE))
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn refuses_symlinks_loose_modes_and_a_lost_key_beside_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let (real, link) = (dir.path().join("real"), dir.path().join("link"));
        std::fs::create_dir_all(&real).unwrap();
        std::fs::create_dir_all(&link).unwrap();
        load_or_create(&real, "uk.example").unwrap();
        std::os::unix::fs::symlink(real.join(KEY_FILE), link.join(KEY_FILE)).unwrap();
        let err = load_or_create(&link, "uk.example").unwrap_err();
        assert!(matches!(err, IdentityError::Symlink { .. }), "{err}");

        std::fs::set_permissions(real.join(KEY_FILE), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let err = load_or_create(&real, "uk.example").unwrap_err();
        assert!(
            matches!(err, IdentityError::Permissions { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");

        std::fs::remove_file(real.join(KEY_FILE)).unwrap();
        let err = open(&real, "uk.example", Some(12)).unwrap_err();
        assert!(
            matches!(err, IdentityError::KeyMissing { size: 12, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("backup") && text.contains("new origin"),
            "{text}"
        );
        assert!(!real.join(KEY_FILE).exists(), "no key was made");
    }

    #[test]
    fn data_dir_and_store_dir_are_created_0700() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        prepare_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join(STORE_DIR)), 0o700);
        // An existing, looser one is kept (and warned about).
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o755);
    }
}
