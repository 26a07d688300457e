//! PDQ against Meta's reference: the hashes of `shared/pdq-reference/images` made by the
//! reference C++ (`expected.csv`), and the reference's needle/haystack search lists.

mod common;

use std::collections::BTreeMap;

use redline_hashing::{
    decode_image, hamming_distance, pdq_dihedral_from_image, pdq_from_image, DecodeLimits,
    Dihedral, PdqHash,
};

struct Expected {
    file: String,
    pdq: PdqHash,
    quality: i32,
    dihedral: Vec<PdqHash>,
}

fn read_expected(dir: &std::path::Path) -> Vec<Expected> {
    let csv =
        std::fs::read_to_string(dir.join("pdq-reference/expected.csv")).expect("read expected.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("file,pdq,quality,dihedral_pdqs"),
        "expected.csv columns changed"
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            assert_eq!(cols.len(), 4, "bad expected.csv line {l}");
            Expected {
                file: cols[0].to_owned(),
                pdq: PdqHash::from_hex(cols[1]).expect("reference hex"),
                quality: cols[2].parse().expect("quality"),
                dihedral: cols[3]
                    .split(' ')
                    .map(|h| PdqHash::from_hex(h).expect("dihedral hex"))
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn pdq_matches_reference_hashes() {
    let Some(dir) = common::shared_dir() else {
        return;
    };
    let expected = read_expected(&dir);
    assert!(
        expected.len() >= 30,
        "expected.csv has only {} rows",
        expected.len()
    );
    let limits = DecodeLimits::default();
    let mut worst = 0;
    let mut total = 0;
    let mut exact = 0;
    for e in &expected {
        let bytes =
            std::fs::read(dir.join("pdq-reference/images").join(&e.file)).expect("read image");
        let img = decode_image(&bytes, &limits).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let got = pdq_from_image(&img);
        let dih = pdq_dihedral_from_image(&img);
        let d = got.hash.distance(&e.pdq);
        let dq = (i32::from(got.quality) - e.quality).abs();
        let dih_d: Vec<u32> = dih
            .hashes
            .iter()
            .zip(&e.dihedral)
            .map(|(a, b)| a.distance(b))
            .collect();
        println!(
            "{:40} {:>5}x{:<5} pdq dist {:2}  quality {:3} (ref {:3})  dihedral dists {:?}",
            e.file,
            img.width(),
            img.height(),
            d,
            got.quality,
            e.quality,
            dih_d
        );
        let bound = if e.quality >= 80 { 2 } else { 10 };
        assert!(
            d <= bound,
            "{}: PDQ {} is {d} bits from reference {} (bound {bound})",
            e.file,
            got.hash.to_hex(),
            e.pdq.to_hex()
        );
        assert!(
            dq <= 5,
            "{}: quality {} vs reference {}",
            e.file,
            got.quality,
            e.quality
        );
        assert_eq!(dih.quality, got.quality);
        for (k, dd) in dih_d.iter().enumerate() {
            assert!(
                *dd <= bound,
                "{}: dihedral {:?} is {dd} bits from reference",
                e.file,
                Dihedral::ALL[k]
            );
        }
        worst = worst.max(d).max(*dih_d.iter().max().unwrap());
        total += 1;
        if d == 0 && dih_d.iter().all(|&x| x == 0) {
            exact += 1;
        }
    }
    println!("{exact}/{total} images bit-identical to the reference (all 9 hashes); worst distance {worst} bits");
}

#[test]
fn dihedral_reference_images_match_transformed_hashes() {
    // dih__bridge-N-*.jpg are the original bridge photo rotated/flipped; each one's PDQ must be
    // close to the corresponding dihedral hash of the original.
    let Some(dir) = common::shared_dir() else {
        return;
    };
    let img_dir = dir.join("pdq-reference/images");
    let limits = DecodeLimits::default();
    let load = |name: &str| {
        decode_image(&std::fs::read(img_dir.join(name)).expect("read"), &limits).expect("decode")
    };
    let original = pdq_dihedral_from_image(&load("dih__bridge-1-original.jpg"));
    let files = [
        ("dih__bridge-1-original.jpg", Dihedral::Original),
        ("dih__bridge-2-rotate-90.jpg", Dihedral::Rotate90),
        ("dih__bridge-3-rotate-180.jpg", Dihedral::Rotate180),
        ("dih__bridge-4-rotate-270.jpg", Dihedral::Rotate270),
        ("dih__bridge-5-flipx.jpg", Dihedral::FlipX),
        ("dih__bridge-6-flipy.jpg", Dihedral::FlipY),
        ("dih__bridge-7-flip-plus-1.jpg", Dihedral::FlipPlus1),
        ("dih__bridge-8-flip-minus-1.jpg", Dihedral::FlipMinus1),
    ];
    for (file, d) in files {
        let img = load(file);
        let direct = pdq_from_image(&img).hash;
        let dist = direct.distance(&original.get(d));
        // And the image-domain operation we document for `d` undoes the file's transform.
        let redone = pdq_from_image(&d.apply_to_image(&load("dih__bridge-1-original.jpg"))).hash;
        let dist_op = redone.distance(&direct);
        println!("{file:34} vs {d:?} of original: {dist} bits; apply_to_image: {dist_op} bits");
        assert!(dist <= 16, "{file}: {dist} bits from {d:?} of the original");
        assert!(
            dist_op <= 16,
            "{file}: apply_to_image({d:?}) is {dist_op} bits away"
        );
    }
}

fn read_hashes(path: &std::path::Path) -> Vec<PdqHash> {
    std::fs::read_to_string(path)
        .expect("read hash list")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| PdqHash::from_hex(l.split_whitespace().next().unwrap()).expect("hash list hex"))
        .collect()
}

/// The reference's search lists: 100 needles and 1350 haystack hashes. The data implies (and
/// these assertions pin) that needles 0..50 appear verbatim at haystack positions 1000..1050,
/// that every needle has one near-duplicate within 4 bits and one further variant within 32, and
/// nothing else: 250 matches in all at radius 32.
#[test]
fn needles_in_haystack_radius_32() {
    let Some(dir) = common::shared_dir() else {
        return;
    };
    let needles = read_hashes(&dir.join("pdq-reference/needles.txt"));
    let haystack = read_hashes(&dir.join("pdq-reference/haystack.txt"));
    assert_eq!((needles.len(), haystack.len()), (100, 1350));
    let mut matches: BTreeMap<usize, Vec<(usize, u32)>> = BTreeMap::new();
    for (i, n) in needles.iter().enumerate() {
        for (j, h) in haystack.iter().enumerate() {
            let d = hamming_distance(&n.0, &h.0);
            assert_eq!(
                d,
                slow_distance(n, h),
                "hamming_distance disagrees with a bit-by-bit count"
            );
            if d <= 32 {
                matches.entry(i).or_default().push((j, d));
            }
        }
    }
    let total: usize = matches.values().map(Vec::len).sum();
    let exact = matches.values().flatten().filter(|(_, d)| *d == 0).count();
    let mut histogram = BTreeMap::new();
    for (_, d) in matches.values().flatten() {
        *histogram.entry(*d).or_insert(0) += 1;
    }
    println!(
        "radius 32: {} of {} needles match; {total} matches, {exact} exact; distance histogram {histogram:?}",
        matches.len(),
        needles.len()
    );
    assert_eq!(
        matches.len(),
        needles.len(),
        "every needle must find its near-duplicates"
    );
    assert_eq!(total, 250);
    assert_eq!(exact, 50);
    for (i, m) in &matches {
        let mut dists: Vec<u32> = m.iter().map(|x| x.1).collect();
        dists.sort_unstable();
        if *i < 50 {
            assert!(
                m.contains(&(1000 + i, 0)),
                "needle {i} not found verbatim at haystack {}",
                1000 + i
            );
            assert_eq!(dists.len(), 3, "needle {i}: {m:?}");
        } else {
            assert_eq!(dists.len(), 2, "needle {i}: {m:?}");
        }
        let near = dists.iter().filter(|&&d| d > 0 && d <= 4).count();
        let far = dists.iter().filter(|&&d| d > 4).count();
        assert_eq!((near, far), (1, 1), "needle {i}: distances {dists:?}");
    }
}

fn slow_distance(a: &PdqHash, b: &PdqHash) -> u32 {
    (0..256).filter(|&k| a.bit(k) != b.bit(k)).count() as u32
}
