//! Choosing how to search a segment: the substring layout at build time and,
//! for every query radius, which tables to probe with which thresholds.
//!
//! Correctness rests on the generalised pigeonhole principle (Qin et al.,
//! "GPH", building on Norouzi et al.'s multi-index hashing): if the
//! substrings are disjoint and a hash is within distance `d` of the query,
//! then for any chosen tables with thresholds `t_i` where
//! `Σ (t_i + 1) ≥ d + 1`, at least one chosen substring differs in at most
//! `t_i` bits. So a plan is any such allocation; which one is a matter of
//! speed only, decided here with a simple cost model in nanoseconds. Costs
//! grow with `t` faster than linearly, so handing out the `d + 1` units one
//! at a time to the table with the cheapest next step is optimal, and the
//! plan for `d` is the plan for `d - 1` plus one step. When the best plan
//! costs more than scanning the segment, the segment is scanned instead.

/// Where one substring table reads its key and how it is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableSpec {
    /// First bit of the substring.
    pub(crate) start: u32,
    /// Substring width in bits (1..=32).
    pub(crate) width: u32,
    /// High bits of the substring that index the bucket directory; the
    /// remaining `width - dir_bits` (≤ 8) low bits are kept in each entry.
    pub(crate) dir_bits: u32,
}

impl TableSpec {
    /// Low bits stored in each entry.
    pub(crate) fn low_bits(&self) -> u32 {
        self.width - self.dir_bits
    }
}

/// Most substring tables a segment gets: 4 bytes a hash each, so 16 tables
/// keep the tables at 64 bytes a hash.
pub(crate) const MAX_TABLES: usize = 16;
/// Largest directory, in bits (16 MiB of offsets a table).
const MAX_DIR_BITS: u32 = 22;

/// Rough costs in nanoseconds, calibrated on the PDQ benchmark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CostModel {
    /// Fixed cost of using a table in a query.
    pub(crate) per_table: f64,
    /// Visiting one directory bucket (usually a cache miss).
    pub(crate) per_bucket: f64,
    /// Checking the low bits of one entry (sequential).
    pub(crate) per_entry: f64,
    /// Verifying one candidate against its full hash (a random access).
    pub(crate) per_candidate: f64,
    /// Scanning one stored hash linearly.
    pub(crate) per_scanned: f64,
}

impl CostModel {
    /// The model for hashes of `bytes` bytes.
    pub(crate) fn for_width(bytes: usize) -> Self {
        Self {
            per_table: 40.0,
            per_bucket: 12.0,
            per_entry: 1.0,
            per_candidate: 10.0,
            per_scanned: 0.3 + 0.06 * bytes as f64,
        }
    }
}

fn binomial(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    let mut r = 1.0;
    for i in 0..k {
        r = r * f64::from(n - i) / f64::from(i + 1);
    }
    r
}

/// Expected cost of probing `spec` with threshold `t` in a segment of `n`.
fn table_cost(spec: &TableSpec, t: u32, n: f64, m: &CostModel) -> f64 {
    let k = spec.dir_bits;
    let buckets: f64 = (0..=t.min(k)).map(|w| binomial(k, w)).sum();
    let entries = buckets * n / 2f64.powi(k as i32);
    let cands: f64 = (0..=t.min(spec.width))
        .map(|j| binomial(spec.width, j))
        .sum::<f64>()
        * n
        / 2f64.powi(spec.width as i32);
    m.per_table + buckets * m.per_bucket + entries * m.per_entry + cands * m.per_candidate
}

/// Evenly splits `bits` into `tables` substrings sized for `n` hashes.
///
/// The directory gets about `log2(2n / tables)` bits so it costs at most
/// ~8 bytes a hash over all tables; a substring is never wider than the
/// directory plus the 8 low bits an entry can hold, so tables of a small
/// segment may cover only part of the hash (still correct, see module docs).
pub(crate) fn layout(bits: u32, n: usize, tables: usize) -> Vec<TableSpec> {
    let m = tables as u32;
    let per = (2 * n / tables).max(1) as u64;
    let k0 = (63 - per.leading_zeros()).min(MAX_DIR_BITS);
    let mut specs = Vec::with_capacity(tables);
    let mut start = 0;
    for i in 0..m {
        let even = bits / m + u32::from(i < bits % m);
        let width = even.min(32).min(k0 + 8);
        if width > 0 {
            specs.push(TableSpec {
                start,
                width,
                dir_bits: k0.min(width),
            });
        }
        start += even;
    }
    specs
}

/// For each radius, the tables to probe and their thresholds.
#[derive(Debug, Clone)]
pub(crate) struct Plans {
    /// `by_radius[d]` lists `(table, threshold)`; radii at or beyond
    /// `by_radius.len()` scan linearly.
    pub(crate) by_radius: Vec<Vec<(u16, u16)>>,
}

impl Plans {
    /// Plans for every radius `0..=bits`, cut off where scanning the segment
    /// becomes cheaper (unless `prefer_probe`).
    pub(crate) fn build(
        specs: &[TableSpec],
        n: usize,
        bits: u32,
        model: &CostModel,
        prefer_probe: bool,
    ) -> (Self, f64) {
        let nf = n as f64;
        let linear = nf * model.per_scanned;
        let mut t: Vec<i64> = vec![-1; specs.len()];
        let mut cost = vec![0.0; specs.len()];
        let mut by_radius = Vec::new();
        let mut first_cost = f64::INFINITY;
        for d in 0..=bits {
            // One more unit for radius d.
            let mut best: Option<(usize, f64)> = None;
            for (i, spec) in specs.iter().enumerate() {
                if t[i] >= i64::from(spec.width) {
                    continue;
                }
                let next = table_cost(spec, (t[i] + 1) as u32, nf, model);
                let delta = next - cost[i];
                if best.is_none_or(|(_, b)| delta < b) {
                    best = Some((i, delta));
                }
            }
            let Some((i, delta)) = best else { break };
            t[i] += 1;
            cost[i] += delta;
            let total: f64 = cost.iter().sum();
            if d == 0 {
                first_cost = total;
            }
            if !prefer_probe && total >= linear {
                break;
            }
            let plan = t
                .iter()
                .enumerate()
                .filter(|(_, &ti)| ti >= 0)
                .map(|(i, &ti)| (i as u16, ti as u16))
                .collect();
            by_radius.push(plan);
        }
        (Self { by_radius }, first_cost)
    }

    /// Estimated cost of this layout at `radius`, for choosing layouts.
    pub(crate) fn estimate(specs: &[TableSpec], n: usize, radius: u32, model: &CostModel) -> f64 {
        let (plans, _) = Plans::build(specs, n, radius, model, true);
        match plans.by_radius.get(radius as usize) {
            Some(plan) => plan
                .iter()
                .map(|&(i, ti)| table_cost(&specs[i as usize], u32::from(ti), n as f64, model))
                .sum(),
            None => f64::INFINITY,
        }
    }

    /// The plan for `radius`, or `None` to scan linearly.
    pub(crate) fn get(&self, radius: u32) -> Option<&[(u16, u16)]> {
        self.by_radius.get(radius as usize).map(Vec::as_slice)
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.by_radius.capacity() * std::mem::size_of::<Vec<(u16, u16)>>()
            + self
                .by_radius
                .iter()
                .map(|p| p.capacity() * 4)
                .sum::<usize>()
    }
}

/// Picks the substring layout for a segment of `n` hashes, or `None` when a
/// linear scan beats every layout at the tuning radius.
pub(crate) fn choose_layout(
    bits: u32,
    n: usize,
    tuning_radius: u32,
    model: &CostModel,
    forced_tables: Option<usize>,
    prefer_probe: bool,
) -> Option<Vec<TableSpec>> {
    if n == 0 {
        return None;
    }
    if let Some(m) = forced_tables {
        return Some(layout(bits, n, m.clamp(1, MAX_TABLES)));
    }
    let linear = n as f64 * model.per_scanned;
    let mut best: Option<(f64, Vec<TableSpec>)> = None;
    for m in 1..=MAX_TABLES {
        let specs = layout(bits, n, m);
        let cost = Plans::estimate(&specs, n, tuning_radius, model);
        if best.as_ref().is_none_or(|(b, _)| cost < *b) {
            best = Some((cost, specs));
        }
    }
    let (cost, specs) = best?;
    (prefer_probe || cost < linear).then_some(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_satisfy_pigeonhole() {
        let specs = layout(256, 1 << 20, 12);
        let (plans, _) = Plans::build(&specs, 1 << 20, 256, &CostModel::for_width(32), true);
        for (d, plan) in plans.by_radius.iter().enumerate() {
            let units: usize = plan.iter().map(|&(_, t)| usize::from(t) + 1).sum();
            assert_eq!(units, d + 1);
        }
    }

    #[test]
    fn layout_covers_disjoint_bits() {
        for m in 1..=MAX_TABLES {
            let specs = layout(256, 5000, m);
            for w in specs.windows(2) {
                assert!(w[0].start + w[0].width <= w[1].start);
            }
            for s in &specs {
                assert!(s.low_bits() <= 8 && s.width <= 32 && s.start + s.width <= 256);
            }
        }
    }

    #[test]
    fn pdq_million_prefers_many_tables() {
        let model = CostModel::for_width(32);
        let specs = choose_layout(256, 1 << 20, 31, &model, None, false).expect("tables");
        assert!(specs.len() >= 10, "{specs:?}");
        assert!(choose_layout(256, 100, 31, &model, None, false).is_none());
    }
}
