//! Static tlog-tiles trees (`[tiles] publish_dir`): after each commit, every origin the node
//! holds is written as C2SP tlog-tiles files under `<dir>/<origin>/`, which any web server,
//! object store or CDN can serve. Thousands of platforms can then pull a hotline's list from a
//! CDN rather than from the hotline, verifying it exactly as from the node.
//!
//! Each publication writes only the tiles the new tree adds ([`TileRef::new_tiles`]), each to
//! a temporary file that is synced and then renamed into place, and the checkpoint last, so a
//! reader never sees a checkpoint whose tiles are missing, and a crash leaves the previous
//! complete tree. At start the tree already in the directory is continued only if its
//! checkpoint is one of this node's trees (same root at that size); otherwise it is written
//! again from the first tile.

use crate::node::{Node, NodeError};
use crate::store::StoredCheckpoint;
use futures::StreamExt;
use redline_proto::checkpoint;
use redline_proto::tiles::TileRef;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Why a publication failed (it is retried with the next commit).
#[derive(Debug, Error)]
pub enum PublishError {
    #[error("origin {0:?} cannot be a directory name (empty, absolute or with . or .. segments)")]
    UnsafeOrigin(String),
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Node(#[from] NodeError),
}

/// Publishes every origin's tree into `dir` after each commit until `stopping`.
pub async fn publish_tiles(
    node: Arc<Node>,
    dir: PathBuf,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut heads = node.logs().watch();
    let mut published: HashMap<String, u64> = HashMap::new();
    loop {
        let head = tokio::select! {
            head = heads.next() => head,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let Some((origin, cp)) = head else { return };
        let since = match published.get(&origin) {
            Some(size) => *size,
            None => already_published(&node, &dir, &origin).await,
        };
        match publish(&node, &dir, &origin, &cp, since).await {
            Ok(written) => {
                tracing::debug!(%origin, size = cp.size, tiles = written, "tiles published");
                published.insert(origin, cp.size);
            }
            Err(e) => {
                tracing::warn!(%origin, error = %e, "tiles not published; retried on the next commit")
            }
        }
    }
}

/// The size of the tree in `<dir>/<origin>/` that this node's log continues, or 0.
async fn already_published(node: &Node, dir: &Path, origin: &str) -> u64 {
    let Ok(origin_dir) = origin_dir(dir, origin) else {
        return 0;
    };
    let Ok(note) = tokio::fs::read(origin_dir.join("checkpoint")).await else {
        return 0;
    };
    // Our own file, but it is checked against the log before anything is built on it.
    let Ok(held) = node.logs().checkpoint(origin) else {
        return 0;
    };
    let Some(trust) = node.logs().trust().get(origin) else {
        return 0;
    };
    let Ok(verified) = trust.key.verify(&note) else {
        return 0;
    };
    if verified.size == 0 || verified.size > held.size {
        return 0;
    }
    match node.logs().root_at(origin, verified.size).await {
        Ok(root) if root == verified.root => verified.size,
        _ => 0,
    }
}

/// Writes the tiles `cp`'s tree adds to the one of `since` entries, then `cp`'s note.
/// Returns the number of tiles written.
async fn publish(
    node: &Node,
    dir: &Path,
    origin: &str,
    cp: &StoredCheckpoint,
    since: u64,
) -> Result<usize, PublishError> {
    let origin_dir = origin_dir(dir, origin)?;
    let tiles = TileRef::new_tiles(since.min(cp.size), cp.size);
    for tile in &tiles {
        let bytes = node.logs().tile(origin, *tile).await?;
        write_atomically(&origin_dir.join(tile.path()), bytes).await?;
    }
    debug_assert_eq!(checkpoint::unverified_size(&cp.note).ok(), Some(cp.size));
    write_atomically(&origin_dir.join("checkpoint"), cp.note.clone()).await?;
    Ok(tiles.len())
}

/// `<dir>/<origin>`, refusing origin names that would leave `dir`.
fn origin_dir(dir: &Path, origin: &str) -> Result<PathBuf, PublishError> {
    // By segment rather than by `Path::components`, which silently drops `.` and `//`.
    let safe = origin
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
    if !safe {
        return Err(PublishError::UnsafeOrigin(origin.to_owned()));
    }
    Ok(dir.join(origin))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it to `path`.
async fn write_atomically(path: &Path, bytes: Vec<u8>) -> Result<(), PublishError> {
    let path = path.to_owned();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PublishError::Io { path, source }
    };
    tokio::task::spawn_blocking(move || {
        let parent = path.parent().expect("tile paths have a parent");
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io(parent))?;
        tmp.write_all(&bytes).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        tmp.persist(&path).map_err(|e| PublishError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    })
    .await
    .map_err(|e| PublishError::Node(NodeError::Join(e.to_string())))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_stay_inside_the_directory() {
        let dir = Path::new("/srv/tiles");
        assert_eq!(
            origin_dir(dir, "hotline.example/list").unwrap(),
            Path::new("/srv/tiles/hotline.example/list")
        );
        for bad in ["", "../etc", "a/../../b", "/abs", "a//b", "a/./b", "a/"] {
            assert!(origin_dir(dir, bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[tokio::test]
    async fn a_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o/tile/0/000");
        write_atomically(&path, b"first".to_vec()).await.unwrap();
        write_atomically(&path, b"second".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // No temporary file is left beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
