//! Segment merges that the caller runs outside the index.
//!
//! Merging keeps the number of segments (and so the cost of a query)
//! logarithmic, but a merge that produces a multi-million-slot segment takes
//! seconds to build. The server calls the index under a write lock, so an
//! inline build of that size stalls every match query and hides freshly
//! committed hashes for as long. With
//! [`IndexOptions::background_merge_threshold`](crate::IndexOptions) set,
//! such a merge is only recorded: the caller takes it as a [`MergeJob`]
//! (a copy of the hashes it covers, cheap next to the build), builds it on
//! another thread without any lock and hands the [`BuiltMerge`] back. The
//! crate itself stays free of threads and I/O.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bits::{Words, W1, W16, W2, W32, W4, W8};
use crate::segment::{BuildParams, Segment};

/// A layout generation that no other index and no earlier layout of this
/// index ever had.
///
/// Process-wide rather than per index so that a [`BuiltMerge`] can only be
/// installed into the index (and the layout) it was taken from: a merge
/// built over another index's hashes would have tables that miss matches.
pub(crate) fn fresh_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Counters of the merge machinery, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Slots of the largest segment a merge built inside a call to the index
    /// (`insert`, `insert_batch`, `install_merge`). Sealing the buffer and
    /// compaction are not merges and are not counted.
    pub largest_inline_merge: usize,
    /// Jobs handed out by [`HammingIndex::take_merge_job`](crate::HammingIndex::take_merge_job).
    pub jobs_taken: u64,
    /// Built merges swapped in.
    pub jobs_installed: u64,
    /// Built merges dropped because the layout changed since they were taken.
    pub jobs_rejected: u64,
}

/// The width-specific content of a [`MergeJob`].
pub(crate) struct Job<H> {
    pub(crate) start: usize,
    /// Copy of the hashes of slots `start..start + hashes.len()`; slots never
    /// change between compactions, so the copy stays equal to the store.
    pub(crate) hashes: Vec<H>,
    pub(crate) params: BuildParams,
    pub(crate) generation: u64,
}

impl<H: Words> Job<H> {
    fn run(self) -> BuiltMerge {
        BuiltMerge {
            segment: Segment::build_over(&[&self.hashes], self.start, &self.params),
            generation: self.generation,
        }
    }
}

macro_rules! width_erased_job {
    ($($w:ident),*) => {
        /// One job per block width, like the index's engine.
        enum Body {
            $($w(Job<$w>),)*
        }

        $(impl From<Job<$w>> for MergeJob {
            fn from(job: Job<$w>) -> Self {
                Self(Body::$w(job))
            }
        })*

        impl MergeJob {
            /// Builds the merged segment: the expensive part, meant to run on
            /// a thread of the caller's with no lock held.
            pub fn run(self) -> BuiltMerge {
                match self.0 {
                    $(Body::$w(job) => job.run(),)*
                }
            }

            /// `(first slot, slots, generation)`, for `Debug`.
            fn header(&self) -> (usize, usize, u64) {
                match &self.0 {
                    $(Body::$w(job) => (job.start, job.hashes.len(), job.generation),)*
                }
            }
        }
    };
}

width_erased_job!(W1, W2, W4, W8, W16, W32);

/// A large segment merge handed out by
/// [`HammingIndex::take_merge_job`](crate::HammingIndex::take_merge_job), to
/// be built away from the index and its lock.
///
/// It owns a copy of the hashes it covers (no borrow of the index), so it is
/// `Send + 'static` and can move to a worker thread. Hand the result of
/// [`MergeJob::run`] to
/// [`HammingIndex::install_merge`](crate::HammingIndex::install_merge). Until
/// then the index keeps searching the segments the job replaces, so results
/// stay exact; a job that is dropped instead blocks further large merges of
/// that index until its next compaction.
pub struct MergeJob(Body);

impl fmt::Debug for MergeJob {
    // Not derived: the hash copy can hold millions of entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (start, slots, generation) = self.header();
        f.debug_struct("MergeJob")
            .field("start", &start)
            .field("slots", &slots)
            .field("generation", &generation)
            .finish()
    }
}

/// A merged segment built by [`MergeJob::run`], waiting to be installed.
///
/// Kept apart from the job so the index can check, when it gets the segment
/// back, that the layout it was built for still exists (see
/// [`HammingIndex::install_merge`](crate::HammingIndex::install_merge)).
pub struct BuiltMerge {
    pub(crate) segment: Segment,
    pub(crate) generation: u64,
}

impl fmt::Debug for BuiltMerge {
    // Not derived: the segment's tables are large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltMerge")
            .field("start", &self.segment.start)
            .field("slots", &self.segment.len)
            .field("tables", &self.segment.table_count())
            .field("generation", &self.generation)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_static<T: Send + 'static>() {}

    #[test]
    fn jobs_and_results_can_move_to_another_thread() {
        send_static::<MergeJob>();
        send_static::<BuiltMerge>();
    }

    #[test]
    fn generations_are_never_reused() {
        let a = fresh_generation();
        let b = fresh_generation();
        assert_ne!(a, b);
    }
}
