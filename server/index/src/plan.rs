//! Choosing how to search a segment: the substring layout at build time and,
//! for every query radius, which tables to probe with which thresholds.
//!
//! Correctness rests on the generalised pigeonhole principle (Qin et al.,
//! "GPH", building on Norouzi et al.'s multi-index hashing), applied twice.
//! Tables come in adjacent pairs; a pair's two substrings form a *window*,
//! and windows are disjoint. If a hash is within distance `d` and windows
//! get thresholds `T_j` with `Σ (T_j + 1) ≥ d + 1`, some window differs in at
//! most `T_j` bits; inside that window, probing its halves with thresholds
//! `t_a + t_b ≥ T_j - 1` (a threshold of -1 means "not probed") finds it.
//!
//! The pairing buys a free filter. Each 4-byte table entry has 8 to 16 spare
//! bits next to the slot (what the segment's slot numbers leave free, see
//! `entry_layout`); those not taken by the substring's own low bits hold
//! the first bits of the *partner* substring. A candidate from half `a` can
//! only be in a window within `T` if `d(a) + d(partner bits) ≤ T`, so most
//! random candidates are rejected while scanning the bucket, before the
//! random access that verifies the full hash. For PDQ at d ≤ 31 with 16
//! tables of 16 bits, 8 filter bits cut verifications about six-fold and the
//! 12 of a 1M-slot segment about twenty-fold, at no memory cost.
//!
//! Which allocation is used only affects speed, decided with a cost model in
//! nanoseconds. Window costs grow with `T` faster than linearly, so handing
//! out the `d + 1` units one at a time to the window with the cheapest next
//! step gives the plan for every radius in one pass. When the best plan
//! costs more than scanning the segment, the segment is scanned instead.

/// Where one substring table reads its key and how it is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TableSpec {
    /// First bit of the substring.
    pub(crate) start: u32,
    /// Substring width in bits (1..=32).
    pub(crate) width: u32,
    /// High bits of the substring that index the bucket directory; the
    /// remaining `width - dir_bits` low bits are kept in each entry.
    pub(crate) dir_bits: u32,
    /// First bit of the partner bits kept in each entry as a filter.
    pub(crate) filter_start: u32,
    /// Number of partner bits kept (`low_bits + filter_bits ≤ spare_bits`).
    pub(crate) filter_bits: u32,
    /// Bits of each entry below the relative slot (see [`entry_layout`]).
    pub(crate) spare_bits: u32,
    /// Bytes per entry (4 or 5, see [`entry_layout`]).
    pub(crate) entry_bytes: u32,
}

impl TableSpec {
    /// Low bits of the substring stored in each entry.
    pub(crate) fn low_bits(&self) -> u32 {
        self.width - self.dir_bits
    }
}

/// One table probe of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Table index in the segment.
    pub(crate) table: u16,
    /// The substring may differ in at most this many bits.
    pub(crate) threshold: u16,
    /// Substring plus partner bits may differ in at most this many bits
    /// (the window threshold).
    pub(crate) window: u16,
}

/// Most substring tables a segment gets: 4 or 5 bytes a hash each (see
/// [`entry_layout`]), so 16 tables keep the tables at 64–80 bytes a hash.
pub(crate) const MAX_TABLES: usize = 16;
/// Largest directory, in bits (16 MiB of offsets a table).
pub(crate) const MAX_DIR_BITS: u32 = 22;
/// Fewest bits of an entry left for substring low bits and partner filter
/// bits.
pub(crate) const MIN_SPARE_BITS: u32 = 8;
/// Most spare bits an entry gets.
const MAX_SPARE_BITS: u32 = 16;
/// Segments whose slot numbers fit in this many bits get 4-byte entries;
/// larger ones get 5-byte entries.
const FOUR_BYTE_SLOT_BITS: u32 = 20;

/// How a segment of `n` slots packs its table entries: `(bytes, spare)`,
/// the entry size and the bits below the relative slot, shared by the
/// substring's low bits and the partner filter bits.
///
/// Every spare bit is filter, and each filtered-out random candidate saves
/// the cache miss that verifies its full hash. 4 bytes leave a 1M-slot
/// segment (20 slot bits) 12 spare bits; a 10M-slot segment (24 slot bits)
/// would keep only 8 and verify ~3x as many candidates, so segments past
/// 2^20 slots spend a fifth byte per entry (13 tables at 10M: +13 bytes a
/// hash) to keep 16.
pub(crate) fn entry_layout(n: usize) -> (u32, u32) {
    let slot_bits = usize::BITS - n.saturating_sub(1).leading_zeros();
    let bytes = if slot_bits <= FOUR_BYTE_SLOT_BITS {
        4
    } else {
        5
    };
    let spare = (8 * bytes - slot_bits).clamp(MIN_SPARE_BITS, MAX_SPARE_BITS);
    (bytes, spare)
}

/// Rough costs in nanoseconds, calibrated on the PDQ benchmark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CostModel {
    /// Fixed cost of using a table in a query.
    pub(crate) per_table: f64,
    /// Visiting one directory bucket (usually a cache miss).
    pub(crate) per_bucket: f64,
    /// Checking one entry (sequential).
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
            per_bucket: 25.0,
            per_entry: 1.0,
            per_candidate: 20.0,
            per_scanned: 0.3 + 0.08 * bytes as f64,
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

/// P(Binomial(n, 1/2) ≤ k).
fn binomial_cdf(n: u32, k: i64) -> f64 {
    if k < 0 {
        return 0.0;
    }
    let k = (k as u32).min(n);
    (0..=k).map(|j| binomial(n, j)).sum::<f64>() / 2f64.powi(n as i32)
}

/// Expected cost of probing `spec` with `threshold` under window threshold
/// `window` in a segment of `n` uniformly random hashes.
fn probe_cost(spec: &TableSpec, threshold: u32, window: u32, n: f64, m: &CostModel) -> f64 {
    let k = spec.dir_bits;
    let buckets: f64 = (0..=threshold.min(k)).map(|w| binomial(k, w)).sum();
    let entries = buckets * n / 2f64.powi(k as i32);
    let cands: f64 = (0..=threshold.min(spec.width))
        .map(|j| {
            binomial(spec.width, j)
                * binomial_cdf(spec.filter_bits, i64::from(window) - i64::from(j))
        })
        .sum::<f64>()
        * n
        / 2f64.powi(spec.width as i32);
    m.per_table + buckets * m.per_bucket + entries * m.per_entry + cands * m.per_candidate
}

/// A window: one table, or a pair whose entries filter on each other.
#[derive(Debug, Clone, Copy)]
enum Window {
    Single(usize),
    Pair(usize, usize),
}

impl Window {
    /// Largest useful threshold: the window's width.
    fn max_threshold(&self, specs: &[TableSpec]) -> u32 {
        match *self {
            Window::Single(a) => specs[a].width,
            Window::Pair(a, b) => specs[a].width + specs[b].width,
        }
    }

    /// Cheapest probes for window threshold `t_win`, and their cost.
    fn probes(&self, specs: &[TableSpec], t_win: u32, n: f64, m: &CostModel) -> (f64, Vec<Probe>) {
        let probe = |i: usize, t: u32| Probe {
            table: i as u16,
            threshold: t.min(specs[i].width) as u16,
            window: t_win as u16,
        };
        match *self {
            Window::Single(a) => (
                probe_cost(&specs[a], t_win, t_win, n, m),
                vec![probe(a, t_win)],
            ),
            Window::Pair(a, b) => {
                // t_a + t_b = t_win - 1, where -1 means "not probed".
                let mut best = (f64::INFINITY, Vec::new());
                for ta in -1..=i64::from(t_win) {
                    let tb = i64::from(t_win) - 1 - ta;
                    let mut cost = 0.0;
                    let mut probes = Vec::new();
                    for (i, t) in [(a, ta), (b, tb)] {
                        if t >= 0 {
                            let t = t as u32;
                            cost += probe_cost(&specs[i], t, t_win, n, m);
                            probes.push(probe(i, t));
                        }
                    }
                    if cost < best.0 {
                        best = (cost, probes);
                    }
                }
                best
            }
        }
    }
}

fn windows(specs: &[TableSpec]) -> Vec<Window> {
    (0..specs.len())
        .step_by(2)
        .map(|a| {
            if a + 1 < specs.len() {
                Window::Pair(a, a + 1)
            } else {
                Window::Single(a)
            }
        })
        .collect()
}

/// Evenly splits `bits` into `tables` substrings sized for `n` hashes and
/// pairs neighbours as filter partners.
///
/// The directory gets about `log2(2n / tables)` bits so it costs at most
/// ~8 bytes a hash over all tables; a substring is never wider than the
/// directory plus the entry's spare bits, so tables of a small segment may
/// cover only part of the hash (still correct, see module docs).
pub(crate) fn layout(bits: u32, n: usize, tables: usize) -> Vec<TableSpec> {
    let m = tables as u32;
    let per = (2 * n / tables).max(1) as u64;
    let k0 = (63 - per.leading_zeros()).min(MAX_DIR_BITS);
    let (entry_bytes, spare) = entry_layout(n);
    let mut specs = Vec::with_capacity(tables);
    let mut start = 0;
    for i in 0..m {
        let even = bits / m + u32::from(i < bits % m);
        let width = even.min(32).min(k0 + spare);
        if width > 0 {
            specs.push(TableSpec {
                start,
                width,
                dir_bits: k0.min(width),
                filter_start: 0,
                filter_bits: 0,
                spare_bits: spare,
                entry_bytes,
            });
        }
        start += even;
    }
    for w in windows(&specs) {
        if let Window::Pair(a, b) = w {
            for (x, y) in [(a, b), (b, a)] {
                specs[x].filter_start = specs[y].start;
                specs[x].filter_bits = (spare - specs[x].low_bits()).min(specs[y].width);
            }
        }
    }
    specs
}

/// For each radius, the probes to run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plans {
    /// `by_radius[d]` lists the probes for radius `d`; radii at or beyond
    /// `by_radius.len()` scan linearly.
    pub(crate) by_radius: Vec<Vec<Probe>>,
}

impl Plans {
    /// Plans for every radius `0..=bits`, cut off where scanning the segment
    /// becomes cheaper (unless `prefer_probe`). Also returns the estimated
    /// cost per radius.
    pub(crate) fn build(
        specs: &[TableSpec],
        n: usize,
        bits: u32,
        model: &CostModel,
        prefer_probe: bool,
    ) -> (Self, Vec<f64>) {
        let nf = n as f64;
        let linear = nf * model.per_scanned;
        let wins = windows(specs);
        // Current threshold per window (-1: unused), its cost and probes.
        let mut state: Vec<(i64, f64, Vec<Probe>)> = vec![(-1, 0.0, Vec::new()); wins.len()];
        let mut by_radius = Vec::new();
        let mut costs = Vec::new();
        for _d in 0..=bits {
            let mut best: Option<(usize, f64, f64, Vec<Probe>)> = None;
            for (i, w) in wins.iter().enumerate() {
                let (t, cost, _) = &state[i];
                if *t >= i64::from(w.max_threshold(specs)) {
                    continue;
                }
                let (next, probes) = w.probes(specs, (*t + 1) as u32, nf, model);
                let delta = next - cost;
                if best.as_ref().is_none_or(|b| delta < b.1) {
                    best = Some((i, delta, next, probes));
                }
            }
            let Some((i, _, next, probes)) = best else {
                break;
            };
            state[i] = (state[i].0 + 1, next, probes);
            let total: f64 = state.iter().map(|s| s.1).sum();
            if !prefer_probe && total >= linear {
                break;
            }
            by_radius.push(state.iter().flat_map(|s| s.2.iter().copied()).collect());
            costs.push(total);
        }
        (Self { by_radius }, costs)
    }

    /// The plan for `radius`, or `None` to scan linearly.
    pub(crate) fn get(&self, radius: u32) -> Option<&[Probe]> {
        self.by_radius.get(radius as usize).map(Vec::as_slice)
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.by_radius.capacity() * std::mem::size_of::<Vec<Probe>>()
            + self
                .by_radius
                .iter()
                .map(|p| p.capacity() * std::mem::size_of::<Probe>())
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
        let (_, costs) = Plans::build(&specs, n, tuning_radius, model, true);
        let cost = costs
            .get(tuning_radius as usize)
            .copied()
            .unwrap_or(f64::INFINITY);
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
        for m in [1, 5, 12, 16] {
            let specs = layout(256, 1 << 20, m);
            let wins = windows(&specs);
            let (plans, _) = Plans::build(&specs, 1 << 20, 256, &CostModel::for_width(32), true);
            for (d, plan) in plans.by_radius.iter().enumerate() {
                // Σ (T_j + 1) over windows = d + 1, and inside each window the
                // probed thresholds satisfy t_a + t_b ≥ T - 1.
                let mut units = 0;
                for w in &wins {
                    let tables: Vec<usize> = match *w {
                        Window::Single(a) => vec![a],
                        Window::Pair(a, b) => vec![a, b],
                    };
                    let probes: Vec<&Probe> = plan
                        .iter()
                        .filter(|p| tables.contains(&usize::from(p.table)))
                        .collect();
                    if let Some(p) = probes.first() {
                        let t_win = i64::from(p.window);
                        units += t_win + 1;
                        let sum: i64 = tables
                            .iter()
                            .map(|&t| {
                                probes
                                    .iter()
                                    .find(|p| usize::from(p.table) == t)
                                    .map_or(-1, |p| i64::from(p.threshold))
                            })
                            .sum();
                        // A probe at full substring width finds the whole window.
                        let complete = probes
                            .iter()
                            .any(|p| u32::from(p.threshold) == specs[usize::from(p.table)].width);
                        assert!(
                            complete || sum > t_win - i64::from(tables.len() as u32),
                            "{plan:?}"
                        );
                    }
                }
                assert_eq!(units, d as i64 + 1, "m={m} d={d}");
            }
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
                assert!(s.low_bits() + s.filter_bits <= s.spare_bits);
                assert!(s.spare_bits >= MIN_SPARE_BITS);
                assert!(s.width <= 32 && s.start + s.width <= 256);
                assert!(s.filter_bits == 0 || s.filter_start != s.start);
            }
        }
    }

    #[test]
    fn entries_leave_room_for_every_slot() {
        assert_eq!(entry_layout(0), (4, 16));
        assert_eq!(entry_layout(1 << 16), (4, 16));
        assert_eq!(entry_layout((1 << 16) + 1), (4, 15));
        assert_eq!(entry_layout(1_000_000), (4, 12));
        assert_eq!(entry_layout(1 << 20), (4, 12));
        assert_eq!(entry_layout((1 << 20) + 1), (5, 16));
        assert_eq!(entry_layout(10_000_000), (5, 16));
        assert_eq!(entry_layout(1 << 24), (5, 16));
        for n in [
            1usize,
            2,
            1000,
            1 << 16,
            65_537,
            1 << 20,
            (1 << 20) + 1,
            3_000_001,
            1 << 24,
        ] {
            let (bytes, spare) = entry_layout(n);
            assert!(((n - 1) as u64) << spare < 1 << (8 * bytes), "n = {n}");
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
