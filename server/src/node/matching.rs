//! Matching queries against the catalog: radius rules and PDQ's dihedral variants. The catalog
//! does the exact search; this decides what to ask it.

use crate::config::MatchingConfig;
use crate::index::{Catalog, Hit};
use redline_proto::signal::{Distance, SignalType};
use std::collections::HashMap;

/// The radius a query runs with: the type's configured (or protocol) default, lowered by the
/// request when it asks for less; `requested == 0` means the default.
pub fn radius(config: &MatchingConfig, signal_type: SignalType, requested: u32) -> u32 {
    let default = config
        .max_distance
        .get(signal_type.name())
        .copied()
        .unwrap_or(match signal_type.distance() {
            Distance::Hamming { default_max } => default_max,
            Distance::Exact => 0,
        });
    if requested == 0 {
        default
    } else {
        requested.min(default)
    }
}

/// Every matched entry near any of `variants` (the query itself first, then e.g. its
/// rotations), each stored hash once per origin at its smallest distance, sorted by distance.
pub fn search_variants(
    catalog: &Catalog,
    signal_type: SignalType,
    variants: &[Vec<u8>],
    radius: u32,
) -> Vec<Hit> {
    if variants.len() == 1 {
        return catalog.search(signal_type, &variants[0], radius);
    }
    let mut best: HashMap<(String, Vec<u8>), Hit> = HashMap::new();
    for v in variants {
        for hit in catalog.search(signal_type, v, radius) {
            let key = (hit.origin.clone(), hit.hash.clone());
            match best.get(&key) {
                Some(b) if (b.distance, b.index) <= (hit.distance, hit.index) => {}
                _ => {
                    best.insert(key, hit);
                }
            }
        }
    }
    let mut hits: Vec<Hit> = best.into_values().collect();
    hits.sort_by(|a, b| (a.distance, &a.origin, a.index).cmp(&(b.distance, &b.origin, b.index)));
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_may_lower_the_radius_but_not_raise_it() {
        let mut c = MatchingConfig::default();
        assert_eq!(radius(&c, SignalType::Pdq, 0), 31);
        assert_eq!(radius(&c, SignalType::Pdq, 10), 10);
        assert_eq!(radius(&c, SignalType::Pdq, 64), 31);
        c.max_distance.insert("pdq".into(), 40);
        assert_eq!(radius(&c, SignalType::Pdq, 64), 40);
        assert_eq!(radius(&c, SignalType::Md5, 5), 0);
    }
}
