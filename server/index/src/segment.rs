//! A sealed, immutable run of slots with its substring tables and per-radius
//! search plans.
//!
//! Segments are rebuilt rather than updated: inserts go to an unsealed
//! buffer that is scanned linearly, and sealing or merging builds a fresh
//! segment (see `core`). That keeps the tables flat and the search path free
//! of locks or pointer chasing.

use crate::bits::{extract, Words};
use crate::plan::{choose_layout, CostModel, Plans, Probe};
use crate::snapshot::{SnapshotError, SnapshotReader, SnapshotWriter};
use crate::store::Store;
use crate::table::{Table, MAX_SEGMENT};
use prefetch_index::prefetch_index;
use std::io::{Read, Write};

/// How many candidates ahead the verification pass prefetches.
const PREFETCH_AHEAD: usize = 32;

/// Reusable buffers of one search, so a query allocates once.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Packed low and filter bits of the query, per plan position.
    lows: Vec<u32>,
    /// `(bucket, plan position, remaining threshold, remaining window budget)`.
    probes: Vec<(u32, u8, u8, u16)>,
    /// Entry range per probe.
    runs: Vec<(u32, u32)>,
    /// `relative_slot << 8 | plan position`.
    candidates: Vec<u32>,
}

/// How a segment is built; copied from the index options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildParams {
    pub(crate) bits: u32,
    pub(crate) tuning_radius: u32,
    pub(crate) forced_tables: Option<usize>,
    pub(crate) prefer_probe: bool,
    pub(crate) linear_only: bool,
}

/// Immutable index over slots `start..start + len`.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) start: usize,
    pub(crate) len: usize,
    tables: Vec<Table>,
    plans: Plans,
}

impl Segment {
    /// Builds the segment over `start..end` of the store.
    pub(crate) fn build<H: Words>(
        store: &Store<H>,
        start: usize,
        end: usize,
        p: &BuildParams,
    ) -> Self {
        let runs: Vec<&[H]> = store.hash_runs(start, end).map(|(_, run)| run).collect();
        Self::build_over(&runs, start, p)
    }

    /// Builds the segment over slots `start..start + hashes.len()` from their
    /// hashes alone, so that a merge can be built away from the store (see
    /// `merge`).
    /// `runs` are the hashes as contiguous slices in slot order (see [`Table::build`]).
    pub(crate) fn build_over<H: Words>(runs: &[&[H]], start: usize, p: &BuildParams) -> Self {
        let n = runs.iter().map(|r| r.len()).sum();
        let model = CostModel::for_width(H::WORDS * 8);
        let specs = if p.linear_only {
            None
        } else {
            choose_layout(
                p.bits,
                n,
                p.tuning_radius,
                &model,
                p.forced_tables,
                p.prefer_probe,
            )
        }
        .unwrap_or_default();
        let tables: Vec<Table> = specs.iter().map(|&s| Table::build(s, runs)).collect();
        let (plans, _) = Plans::build(&specs, n, p.bits, &model, p.prefer_probe);
        Self {
            start,
            len: n,
            tables,
            plans,
        }
    }

    /// Writes the segment: its range, the specs of its tables, its plans and the tables. The
    /// plans are written rather than rebuilt on load: choosing a layout and planning every
    /// radius costs 5-20 ms a segment, which across a catalog's segments was most of a small
    /// snapshot's load.
    pub(crate) fn save<W: Write>(&self, w: &mut SnapshotWriter<W>) -> Result<(), SnapshotError> {
        w.put_u64(self.start as u64)?;
        w.put_u64(self.len as u64)?;
        w.put_u32(self.tables.len() as u32)?;
        for t in &self.tables {
            let s = t.spec;
            for v in [
                s.start,
                s.width,
                s.dir_bits,
                s.filter_start,
                s.filter_bits,
                s.spare_bits,
                s.entry_bytes,
            ] {
                w.put_u32(v)?;
            }
        }
        w.put_u32(self.plans.by_radius.len() as u32)?;
        for probes in &self.plans.by_radius {
            w.put_u32(probes.len() as u32)?;
            for p in probes {
                w.put_u32(u32::from(p.table))?;
                w.put_u32(u32::from(p.threshold))?;
                w.put_u32(u32::from(p.window))?;
            }
        }
        for t in &self.tables {
            t.save(w)?;
        }
        Ok(())
    }

    /// Reads a segment saved by [`Segment::save`] that must start at `start`. Every spec must
    /// be one a search can run on a segment of this length (substring and filter bits inside
    /// the hash, the directory and entry layout this length gets) and every probe must name one
    /// of its tables, so a search over a loaded segment indexes nothing out of bounds.
    pub(crate) fn load<R: Read, H: Words>(
        start: usize,
        p: &BuildParams,
        r: &mut SnapshotReader<R>,
    ) -> Result<Self, SnapshotError> {
        let corrupt = |m: String| SnapshotError::Corrupt(format!("segment at slot {start}: {m}"));
        let at = r.u64("segment start")? as usize;
        let len = r.u64("segment length")? as usize;
        if at != start || len == 0 || len > MAX_SEGMENT {
            return Err(corrupt(format!("range {at}+{len}")));
        }
        let tables = r.u32("table count")? as usize;
        if tables > crate::plan::MAX_TABLES {
            return Err(corrupt(format!("{tables} tables")));
        }
        let (entry_bytes, spare_bits) = crate::plan::entry_layout(len);
        let mut specs = Vec::with_capacity(tables);
        for _ in 0..tables {
            let mut v = [0u32; 7];
            for x in &mut v {
                *x = r.u32("table spec")?;
            }
            let spec = crate::plan::TableSpec {
                start: v[0],
                width: v[1],
                dir_bits: v[2],
                filter_start: v[3],
                filter_bits: v[4],
                spare_bits: v[5],
                entry_bytes: v[6],
            };
            let valid = (1..=32).contains(&spec.width)
                && spec
                    .start
                    .checked_add(spec.width)
                    .is_some_and(|e| e <= p.bits)
                && spec.dir_bits <= spec.width
                && spec.dir_bits <= crate::plan::MAX_DIR_BITS
                && spec.filter_bits <= 32
                && spec
                    .filter_start
                    .checked_add(spec.filter_bits)
                    .is_some_and(|e| e <= p.bits)
                && (spec.entry_bytes, spec.spare_bits) == (entry_bytes, spare_bits)
                && spec.low_bits() + spec.filter_bits <= spec.spare_bits;
            if !valid {
                return Err(corrupt(format!("table spec {spec:?} cannot be searched")));
            }
            specs.push(spec);
        }
        let radii = r.u32("planned radii")? as usize;
        if radii > p.bits as usize + 1 || (tables == 0 && radii > 0) {
            return Err(corrupt(format!("{radii} planned radii")));
        }
        let mut by_radius = Vec::with_capacity(radii);
        for _ in 0..radii {
            let n = r.u32("probes")? as usize;
            if n > 64 * tables.max(1) {
                return Err(corrupt(format!("{n} probes for one radius")));
            }
            let mut probes = Vec::with_capacity(n);
            for _ in 0..n {
                let (table, threshold, window) = (
                    r.u32("probe table")?,
                    r.u32("probe threshold")?,
                    r.u32("probe window")?,
                );
                if table as usize >= tables || threshold > p.bits || window > p.bits {
                    return Err(corrupt(format!("probe of table {table}")));
                }
                probes.push(Probe {
                    table: table as u16,
                    threshold: threshold as u16,
                    window: window as u16,
                });
            }
            by_radius.push(probes);
        }
        let tables = specs
            .iter()
            .map(|&s| Table::load(s, len, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            start,
            len,
            tables,
            plans: Plans { by_radius },
        })
    }

    /// A segment over slots `start..start + len` without tables: every search
    /// scans it, like the insert buffer it replaces (see `Core::commit_staged`),
    /// until a merge builds it into a real one. Costs nothing to make.
    pub(crate) fn scan_only(start: usize, len: usize) -> Self {
        Self {
            start,
            len,
            tables: Vec::new(),
            plans: Plans::default(),
        }
    }

    /// Appends `(distance, slot)` for every live slot within `radius`.
    ///
    /// Runs in four passes over flat lists — bucket ids, bucket ranges,
    /// candidate slots, verification — so that every random memory access
    /// can be prefetched before it is needed: a bucket's directory entry as
    /// soon as the bucket is listed, its entry run as soon as its range is
    /// read, and a candidate's stored hash a few candidates ahead. The accesses are independent, and overlapping their cache
    /// misses is what makes the search fast: on the benchmark machine an
    /// unprefetched random access costs ~30 ns.
    pub(crate) fn search<H: Words>(
        &self,
        store: &Store<H>,
        query: &H,
        radius: u32,
        scratch: &mut Scratch,
        out: &mut Vec<(u32, u32)>,
    ) {
        let Some(plan) = self.plans.get(radius) else {
            scan(store, query, radius, self.start, self.start + self.len, out);
            return;
        };
        let Scratch {
            lows,
            probes,
            runs,
            candidates,
        } = scratch;
        lows.clear();
        probes.clear();
        runs.clear();
        candidates.clear();
        for (pi, p) in plan.iter().enumerate() {
            let table = &self.tables[usize::from(p.table)];
            let (hi, lo) = table.query_key(query.words());
            lows.push(lo);
            let (t, window) = (u32::from(p.threshold), u32::from(p.window));
            table.for_each_bucket(hi, t, |bucket, rest| {
                prefetch_index(table.offsets(), bucket as usize);
                let used = t - rest;
                probes.push((
                    bucket,
                    pi as u8,
                    rest.min(255) as u8,
                    (window - used) as u16,
                ));
            });
        }
        let table_of = |pi: u8| &self.tables[usize::from(plan[usize::from(pi)].table)];
        for &(bucket, pi, _, _) in probes.iter() {
            let table = table_of(pi);
            let run = table.run(bucket);
            table.prefetch_run(run);
            runs.push(run);
        }
        for (&(_, pi, rest, budget), &run) in probes.iter().zip(runs.iter()) {
            let lo = lows[usize::from(pi)];
            let (rest, budget) = (u32::from(rest), u32::from(budget));
            table_of(pi).scan_run(run, lo, rest, budget, u32::from(pi), candidates);
        }
        for (j, &c) in candidates.iter().enumerate() {
            if let Some(&next) = candidates.get(j + PREFETCH_AHEAD) {
                store.prefetch_hash(self.start + (next >> 8) as usize);
            }
            let rel = (c >> 8) as usize;
            let h = store.hash(self.start + rel);
            let d = query.distance(h);
            if d <= radius {
                let slot = self.start + rel;
                let pi = (c & 0xFF) as usize;
                if store.is_alive(slot) && self.first_finder(&plan[..pi], &query.xor(h)) {
                    out.push((d, slot as u32));
                }
            }
        }
    }

    /// True when no earlier table of the plan also finds this match, so each
    /// match is reported once without a visited set.
    #[inline]
    fn first_finder(&self, earlier: &[Probe], diff: &impl Words) -> bool {
        earlier.iter().all(|p| {
            let s = self.tables[usize::from(p.table)].spec;
            let d_sub = extract(diff.words(), s.start, s.width).count_ones();
            let d_filter = if s.filter_bits == 0 {
                0
            } else {
                extract(diff.words(), s.filter_start, s.filter_bits).count_ones()
            };
            d_sub > u32::from(p.threshold) || d_sub + d_filter > u32::from(p.window)
        })
    }

    /// Number of substring tables (0 for scan-only segments).
    pub(crate) fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tables.iter().map(Table::heap_bytes).sum::<usize>()
            + self.tables.capacity() * std::mem::size_of::<Table>()
            + self.plans.heap_bytes()
    }
}

/// Linear popcount scan over slots `start..end`.
#[inline]
pub(crate) fn scan<H: Words>(
    store: &Store<H>,
    query: &H,
    radius: u32,
    start: usize,
    end: usize,
    out: &mut Vec<(u32, u32)>,
) {
    for (first, run) in store.hash_runs(start, end) {
        for (i, h) in run.iter().enumerate() {
            let d = query.distance(h);
            if d <= radius && store.is_alive(first + i) {
                out.push((d, (first + i) as u32));
            }
        }
    }
}
