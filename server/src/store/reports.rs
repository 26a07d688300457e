//! The victims' reports tree: one record per case, keyed by its case number.
//!
//! | key             | value                                   |
//! |-----------------|-----------------------------------------|
//! | case number     | the encoded case (opaque here)          |
//!
//! A case is not part of any log and never federated: it holds what the reporter may later
//! check or withdraw (the hashes she sent, a digest of her PIN, what became of them), and is
//! rewritten as its status changes. Only hashes are ever in it, never an image.

use super::{Result, Store};

/// Name of the reports tree.
pub(super) const TREE: &str = "victim_reports";

impl Store {
    fn reports(&self) -> Result<sled::Tree> {
        Ok(self.db.open_tree(TREE)?)
    }

    /// Writes case `id` and waits until it is on disk (a case number shown to a reporter must
    /// survive a crash right after).
    pub async fn report_put(&self, id: &str, record: &[u8]) -> Result<()> {
        let tree = self.reports()?;
        tree.insert(id.as_bytes(), record)?;
        tree.flush_async().await?;
        Ok(())
    }

    /// Writes case `id` only if it does not exist yet; `false` when it did (a case number
    /// drawn twice).
    pub async fn report_create(&self, id: &str, record: &[u8]) -> Result<bool> {
        let tree = self.reports()?;
        let created = tree
            .compare_and_swap(id.as_bytes(), None as Option<&[u8]>, Some(record))?
            .is_ok();
        if created {
            tree.flush_async().await?;
        }
        Ok(created)
    }

    /// Case `id`, if any.
    pub fn report_get(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.reports()?.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    /// Every case, in case-number order.
    pub fn report_all(&self) -> Result<Vec<Vec<u8>>> {
        self.reports()?
            .iter()
            .values()
            .map(|v| Ok(v?.to_vec()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cases_are_created_once_rewritten_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store.report_create("RL-A", b"one").await.unwrap());
            assert!(
                !store.report_create("RL-A", b"two").await.unwrap(),
                "drawn twice"
            );
            store.report_put("RL-A", b"three").await.unwrap();
            assert!(store.report_create("RL-B", b"b").await.unwrap());
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.report_get("RL-A").unwrap().as_deref(),
            Some(&b"three"[..])
        );
        assert_eq!(store.report_get("RL-C").unwrap(), None);
        assert_eq!(
            store.report_all().unwrap(),
            [b"three".to_vec(), b"b".to_vec()]
        );
    }
}
