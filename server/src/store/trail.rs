//! The operator trail tree: one record per recorded operator call, append-only.
//!
//! | key       | value                                    |
//! |-----------|------------------------------------------|
//! | id (u64)  | the encoded event (opaque here)          |
//!
//! Ids come from sled's `generate_id` plus one (monotonic across restarts, with gaps, never 0,
//! which the API uses for "from the first" and "no more"), so the tree is in
//! the order the events were recorded and a page is a range scan after the last id seen.
//! Nothing here removes or rewrites a record. It is its own tree, never part of a log commit:
//! the trail says who did what to the signed log; it is not signed or federated itself.

use super::{corrupt, Result, Store};

/// Name of the trail tree.
pub(super) const TREE: &str = "operator_trail";

impl Store {
    /// Appends a trail record and waits until it is on disk; returns its id.
    pub async fn trail_append(&self, record: &[u8]) -> Result<u64> {
        // From 1: `after = 0` means "from the first" and `next_after = 0` "no more".
        let id = self.db.generate_id()? + 1;
        self.trail.insert(id.to_be_bytes(), record)?;
        self.trail.flush_async().await?;
        Ok(id)
    }

    /// Up to `limit` trail records with an id greater than `after`, oldest first.
    pub fn trail_page(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.trail
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                let id = u64::from_be_bytes(
                    k.as_ref()
                        .try_into()
                        .map_err(|_| corrupt("trail id", "not 8 bytes"))?,
                );
                Ok((id, v.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_in_order_pages_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        {
            let store = Store::open(dir.path()).unwrap();
            for i in 0..5u8 {
                ids.push(store.trail_append(&[i]).await.unwrap());
            }
        }
        let store = Store::open(dir.path()).unwrap();
        ids.push(store.trail_append(&[5]).await.unwrap());
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let first = store.trail_page(0, 4).unwrap();
        assert_eq!(
            first.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let rest = store.trail_page(first[3].0, 100).unwrap();
        assert_eq!(rest.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), [4, 5]);
        assert!(store.trail_page(rest[1].0, 100).unwrap().is_empty());
        assert!(store.trail_page(u64::MAX, 100).unwrap().is_empty());
    }
}
