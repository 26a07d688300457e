//! Hash lists in other tools' formats, for exchange with systems outside Redline.
//!
//! - **threatexchange-csv**: the CSV of python-threatexchange's `threatexchange dataset -P --csv`,
//!   columns `signal_type,signal_str,collab,category,tags`. Export writes the *active* hashes of
//!   a log: `signal_type` is the Redline type name (`pdq` is also python-threatexchange's name),
//!   `collab` the origin, `category` `POSITIVE_CLASS`, `tags` the labels separated by spaces.
//!   Import reads any column order, maps `photo_md5` to `md5`, and skips rows whose category
//!   says they are not positives (`NEGATIVE_CLASS`, `FALSE_POSITIVE`). `video_md5` and `vpdq`
//!   are python-threatexchange's names too; a `vpdq` `signal_str` is pytx's signal string (a
//!   JSON list of `"pdqhex,quality,timestamp"`, `redline_hashing::vpdq::text`) both ways, and an
//!   imported one longer than an entry holds becomes several records, consecutive parts.
//! - **stopncii-json**: a StopNCII.org `FetchHashes` page (`{"count", "hashRecords": [...]}`),
//!   one record per hash with `signalType` (`ImagePDQ`), `hashValue`, `hashStatus` (`Active`,
//!   or `Withdrawn` once retracted), `caseNumbers` (`{case_ref: status}`) and
//!   `lastModtimestamp` (seconds). StopNCII has types for PDQ (`ImagePDQ`) and video MD5
//!   (`VideoMD5`, Redline's `video_md5`) only, so export carries those (and says how many it
//!   left out); import takes `ImagePDQ` and `VideoMD5`, Active/Received records only, later
//!   records replacing earlier ones as StopNCII specifies.
//!
//! Every imported hash is validated with the protocol's own rules
//! (`redline_proto::entry::validate_add`) before anything is sent.
//!
//! The CSV functions need the `csv` feature (on by default, through `cli`); without it
//! [`read_list`] refuses [`ListFormat::ThreatExchangeCsv`] with an [`ImportError::Format`].

use redline_proto::entry;
use redline_proto::pb::{AddEntry, Signal};
use redline_proto::replay::{Effect, Replay, ReplayError, Replayed};
use redline_proto::signal::SignalType;
use serde::{Deserialize, Serialize};
use serde_json::Value;
#[cfg(feature = "csv")]
use std::collections::HashSet;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use thiserror::Error;

/// A list format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ListFormat {
    /// python-threatexchange `dataset --csv`: signal_type,signal_str,collab,category,tags.
    #[cfg_attr(feature = "cli", value(name = "threatexchange-csv"))]
    ThreatExchangeCsv,
    /// StopNCII.org FetchHashes JSON: hashRecords with signalType, hashValue, hashStatus, caseNumbers.
    #[cfg_attr(feature = "cli", value(name = "stopncii-json"))]
    StopNciiJson,
}

/// One listed hash of a log, with its retraction if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedHash {
    /// Log index of the ADD.
    pub index: u64,
    /// Signal type name.
    pub signal_type: String,
    /// Lowercase hex.
    pub value: String,
    /// PDQ quality, 0 unknown.
    pub quality: u32,
    /// Labels.
    pub labels: Vec<String>,
    /// Legal basis.
    pub legal_basis: String,
    /// Case reference.
    pub case_ref: String,
    /// When the origin listed it (ms since the epoch).
    pub created_at_ms: u64,
    /// When it was retracted (ms since the epoch), if it was.
    pub retracted_at_ms: Option<u64>,
}

impl ListedHash {
    /// Not retracted.
    pub fn active(&self) -> bool {
        self.retracted_at_ms.is_none()
    }
}

/// Collects a log's ADDs with their retractions, from what the protocol's replay makes of each
/// leaf ([`Replayed`], as [`crate::audit::Auditor::audit_origin_with`] hands them out). Invalid
/// leaves are skipped: an invalid ADD is never active and an invalid RETRACT retracts nothing,
/// the same rule the node matches by.
#[derive(Debug, Default)]
pub struct ListBuilder {
    hashes: Vec<ListedHash>,
    /// Position in `hashes` of the ADD at each log index.
    position: HashMap<u64, usize>,
}

impl ListBuilder {
    /// Takes one replayed leaf.
    pub fn take(&mut self, replayed: &Replayed) {
        match &replayed.effect {
            Effect::Activate {
                signal_type,
                add,
                created_at_ms,
            } => {
                self.position.insert(replayed.index, self.hashes.len());
                self.hashes.push(ListedHash {
                    index: replayed.index,
                    signal_type: signal_type.name().to_owned(),
                    value: hex::encode(&add.hash),
                    quality: add.quality,
                    labels: add.labels.clone(),
                    legal_basis: add.legal_basis.clone(),
                    case_ref: add.case_ref.clone(),
                    created_at_ms: *created_at_ms,
                    retracted_at_ms: None,
                });
            }
            Effect::Deactivate {
                target,
                created_at_ms,
                ..
            } => {
                if let Some(&i) = self.position.get(target) {
                    self.hashes[i].retracted_at_ms = Some(*created_at_ms);
                }
            }
            Effect::Invalid(_) => {}
        }
    }

    /// The ADDs in index order.
    pub fn finish(self) -> Vec<ListedHash> {
        self.hashes
    }
}

/// The ADDs of a log (leaves in order from 0) with their retractions applied, in index order,
/// by the protocol's replay ([`ListBuilder`]).
pub fn hashes_from_leaves(leaves: &[(u64, Vec<u8>)]) -> Result<Vec<ListedHash>, ReplayError> {
    let mut replay = Replay::from_start();
    let mut list = ListBuilder::default();
    for (index, data) in leaves {
        list.take(&replay.push(*index, data)?);
    }
    Ok(list.finish())
}

/// What an export left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Records written.
    pub written: usize,
    /// Hashes of types the format cannot carry.
    pub unsupported: usize,
}

#[cfg(feature = "csv")]
fn tag_of(label: &str) -> String {
    label.split_whitespace().collect::<Vec<_>>().join("_")
}

/// Writes the active hashes as python-threatexchange CSV.
#[cfg(feature = "csv")]
pub fn write_threatexchange_csv(
    w: impl Write,
    collab: &str,
    hashes: &[ListedHash],
) -> Result<ExportSummary, csv::Error> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(["signal_type", "signal_str", "collab", "category", "tags"])?;
    let mut summary = ExportSummary::default();
    let mut seen = HashSet::new();
    for h in hashes.iter().filter(|h| h.active()) {
        if !seen.insert((h.signal_type.as_str(), h.value.as_str())) {
            continue;
        }
        let tags: Vec<String> = h.labels.iter().map(|l| tag_of(l)).collect();
        let value = pytx_signal_str(&h.signal_type, &h.value);
        out.write_record([
            h.signal_type.as_str(),
            value.as_str(),
            collab,
            "POSITIVE_CLASS",
            tags.join(" ").as_str(),
        ])?;
        summary.written += 1;
    }
    out.flush()?;
    Ok(summary)
}

/// A value as python-threatexchange writes it: vPDQ as its signal string, others as they are.
#[cfg(feature = "csv")]
fn pytx_signal_str(signal_type: &str, value: &str) -> String {
    if signal_type != SignalType::Vpdq.name() {
        return value.to_owned();
    }
    hex::decode(value)
        .ok()
        .and_then(|bytes| redline_hashing::vpdq::decode_value(&bytes).ok())
        .map_or_else(
            || value.to_owned(),
            |frames| redline_hashing::vpdq::format_signal(&frames),
        )
}

/// A StopNCII FetchHashes page.
#[derive(Debug, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct StopNciiPage {
    /// Number of records.
    pub count: usize,
    /// Always empty: the whole list is in one page.
    #[serde(default)]
    pub nextPageToken: String,
    /// Latest `lastModtimestamp`.
    #[serde(default)]
    pub nextSetTimestamp: u64,
    /// Always false.
    #[serde(default)]
    pub hasMoreRecords: bool,
    /// The records.
    pub hashRecords: Vec<Value>,
}

/// Writes every PDQ hash (active and withdrawn) as a StopNCII FetchHashes page.
pub fn write_stopncii_json(
    mut w: impl Write,
    hashes: &[ListedHash],
) -> Result<ExportSummary, std::io::Error> {
    // One record per hash: Active if any ADD of it is active; caseNumbers from all of them.
    struct Rec {
        signal_type: &'static str,
        active: bool,
        ts: u64,
        cases: BTreeMap<String, &'static str>,
    }
    let mut recs: BTreeMap<(u64, String), Rec> = BTreeMap::new();
    let mut first_index: HashMap<String, u64> = HashMap::new();
    let mut summary = ExportSummary::default();
    for h in hashes {
        let Some(stopncii_type) = stopncii_type(&h.signal_type) else {
            summary.unsupported += 1;
            continue;
        };
        let first = *first_index.entry(h.value.clone()).or_insert(h.index);
        let rec = recs.entry((first, h.value.clone())).or_insert(Rec {
            signal_type: stopncii_type,
            active: false,
            ts: 0,
            cases: BTreeMap::new(),
        });
        let status = if h.active() { "Active" } else { "Withdrawn" };
        rec.active |= h.active();
        rec.ts = rec
            .ts
            .max(h.retracted_at_ms.unwrap_or(h.created_at_ms) / 1000);
        if !h.case_ref.is_empty() {
            let e = rec.cases.entry(h.case_ref.clone()).or_insert(status);
            if h.active() {
                *e = "Active";
            }
        }
    }
    let records: Vec<Value> = recs
        .into_iter()
        .map(|((_, value), r)| {
            serde_json::json!({
                "lastModtimestamp": r.ts,
                "signalType": r.signal_type,
                "hashValue": value,
                "hashStatus": if r.active { "Active" } else { "Withdrawn" },
                "caseNumbers": r.cases,
                "CSPFeedbacks": [],
            })
        })
        .collect();
    summary.written = records.len();
    let page = StopNciiPage {
        count: records.len(),
        nextPageToken: String::new(),
        nextSetTimestamp: records
            .iter()
            .filter_map(|r| r["lastModtimestamp"].as_u64())
            .max()
            .unwrap_or(0),
        hasMoreRecords: false,
        hashRecords: records,
    };
    serde_json::to_writer_pretty(&mut w, &page)?;
    w.write_all(b"\n")?;
    Ok(summary)
}

/// One hash read from a file, validated, ready to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// The signal (lowercase hex).
    pub signal: Signal,
    /// Labels from the file.
    pub labels: Vec<String>,
    /// Case reference from the file.
    pub case_ref: String,
}

/// What an import read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportPlan {
    /// Records (rows) in the file.
    pub read: usize,
    /// Valid, distinct hashes to submit, in file order.
    #[serde(skip)]
    pub records: Vec<ImportRecord>,
    /// Records repeating an earlier hash of the file.
    pub duplicates_in_file: usize,
    /// Records withdrawn, deleted or marked as not positive.
    pub skipped_not_active: usize,
    /// Records of a type Redline cannot hold (e.g. StopNCII VideoTMK), by type.
    pub skipped_unsupported: BTreeMap<String, usize>,
}

/// A file could not be imported; nothing was sent.
#[derive(Debug, Error)]
pub enum ImportError {
    #[error("{where_}: {detail}")]
    Record { where_: String, detail: String },
    #[error("not a {format} file: {detail}")]
    Format {
        format: &'static str,
        detail: String,
    },
}

fn checked(
    signal_type: SignalType,
    value: &str,
    labels: Vec<String>,
    case_ref: String,
    where_: &dyn Fn() -> String,
) -> Result<ImportRecord, ImportError> {
    let value = value.trim().to_ascii_lowercase();
    let bad = |detail: String| ImportError::Record {
        where_: where_(),
        detail,
    };
    let hash = signal_type
        .parse_hex(&value)
        .map_err(|e| bad(e.to_string()))?;
    let add = AddEntry {
        signal_type: signal_type.name().to_owned(),
        hash,
        quality: 0,
        labels: labels.clone(),
        legal_basis: String::new(),
        case_ref: case_ref.clone(),
    };
    entry::validate_add(&add).map_err(|e| bad(e.to_string()))?;
    Ok(ImportRecord {
        signal: Signal {
            signal_type: signal_type.name().to_owned(),
            value,
            quality: 0,
        },
        labels,
        case_ref,
    })
}

#[cfg(feature = "csv")]
fn threatexchange_type(name: &str) -> Option<SignalType> {
    match name.trim() {
        "photo_md5" => Some(SignalType::Md5),
        other => SignalType::from_name(other).ok(),
    }
}

/// The hex vPDQ values (one per part of at most 1,200 frames) of a python-threatexchange vPDQ
/// signal string.
#[cfg(feature = "csv")]
fn vpdq_values(signal_str: &str) -> Result<Vec<String>, String> {
    let frames = redline_hashing::vpdq::parse_signal(signal_str).map_err(|e| e.to_string())?;
    let values = redline_hashing::vpdq::encode_values(&frames);
    if values.is_empty() {
        return Err("vpdq signal has no frame".into());
    }
    Ok(values.iter().map(hex::encode).collect())
}

/// The StopNCII `signalType` of a Redline type, if StopNCII has one.
fn stopncii_type(signal_type: &str) -> Option<&'static str> {
    match SignalType::from_name(signal_type).ok()? {
        SignalType::Pdq => Some("ImagePDQ"),
        SignalType::VideoMd5 => Some("VideoMD5"),
        _ => None,
    }
}

/// Reads python-threatexchange CSV.
#[cfg(feature = "csv")]
pub fn read_threatexchange_csv(text: &str) -> Result<ImportPlan, ImportError> {
    let fmt = |detail: String| ImportError::Format {
        format: "threatexchange-csv",
        detail,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| fmt(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect::<Vec<_>>();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(c_type), Some(c_value)) = (col("signal_type"), col("signal_str")) else {
        return Err(fmt(format!(
            "the header must name signal_type and signal_str columns (found: {})",
            headers.join(",")
        )));
    };
    let c_category = col("category");
    let c_tags = col("tags");
    let mut plan = ImportPlan::default();
    let mut seen = HashSet::new();
    for (i, row) in rdr.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| ImportError::Record {
            where_: format!("line {line}"),
            detail: e.to_string(),
        })?;
        plan.read += 1;
        let get = |c: Option<usize>| c.and_then(|c| row.get(c)).unwrap_or("").trim();
        let type_name = get(Some(c_type));
        let Some(t) = threatexchange_type(type_name) else {
            *plan
                .skipped_unsupported
                .entry(type_name.to_owned())
                .or_default() += 1;
            continue;
        };
        if matches!(get(c_category), "NEGATIVE_CLASS" | "FALSE_POSITIVE") {
            plan.skipped_not_active += 1;
            continue;
        }
        let labels: Vec<String> = get(c_tags).split_whitespace().map(str::to_owned).collect();
        let values = if t == SignalType::Vpdq {
            vpdq_values(get(Some(c_value))).map_err(|detail| ImportError::Record {
                where_: format!("line {line}"),
                detail,
            })?
        } else {
            vec![get(Some(c_value)).to_owned()]
        };
        for value in values {
            let rec = checked(t, &value, labels.clone(), String::new(), &|| {
                format!("line {line}")
            })?;
            if !seen.insert((rec.signal.signal_type.clone(), rec.signal.value.clone())) {
                plan.duplicates_in_file += 1;
                continue;
            }
            plan.records.push(rec);
        }
    }
    Ok(plan)
}

/// Reads a StopNCII FetchHashes page (or a bare array of hash records).
pub fn read_stopncii_json(text: &str) -> Result<ImportPlan, ImportError> {
    let fmt = |detail: String| ImportError::Format {
        format: "stopncii-json",
        detail,
    };
    let v: Value = serde_json::from_str(text).map_err(|e| fmt(e.to_string()))?;
    let records = match &v {
        Value::Array(a) => a.as_slice(),
        Value::Object(o) => o
            .get("hashRecords")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .ok_or_else(|| fmt("no hashRecords array".into()))?,
        _ => return Err(fmt("expected an object with hashRecords".into())),
    };
    let mut plan = ImportPlan::default();
    // Later records of the same hash replace earlier ones: keep the last state per hash.
    let mut last: Vec<(String, Option<ImportRecord>)> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        plan.read += 1;
        let where_ = || format!("hashRecords[{i}]");
        let field = |name: &str| -> Result<&str, ImportError> {
            r.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| ImportError::Record {
                    where_: where_(),
                    detail: format!("missing or non-string field {name:?}"),
                })
        };
        let st = field("signalType")?;
        let t = match st {
            "ImagePDQ" => SignalType::Pdq,
            "VideoMD5" => SignalType::VideoMd5,
            other => {
                *plan
                    .skipped_unsupported
                    .entry(other.to_owned())
                    .or_default() += 1;
                continue;
            }
        };
        let value = field("hashValue")?;
        let status = r
            .get("hashStatus")
            .and_then(Value::as_str)
            .unwrap_or("Active");
        let key = format!("{}:{}", t.name(), value.trim().to_ascii_lowercase());
        let rec = if matches!(status, "Active" | "Received") {
            let cases: Vec<String> = r
                .get("caseNumbers")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter(|(_, s)| !matches!(s.as_str(), Some("Withdrawn" | "Deleted")))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            Some(checked(
                t,
                value,
                vec!["ncii".to_owned()],
                cases.join(","),
                &where_,
            )?)
        } else {
            // Still validated, so a broken file is refused as a whole.
            checked(t, value, vec![], String::new(), &where_)?;
            None
        };
        match by_key.get(&key) {
            Some(&j) => {
                plan.duplicates_in_file += 1;
                last[j].1 = rec;
            }
            None => {
                by_key.insert(key.clone(), last.len());
                last.push((key, rec));
            }
        }
    }
    for (_, rec) in last {
        match rec {
            Some(r) => plan.records.push(r),
            None => plan.skipped_not_active += 1,
        }
    }
    Ok(plan)
}

/// Reads `text` in `format`.
pub fn read_list(format: ListFormat, text: &str) -> Result<ImportPlan, ImportError> {
    match format {
        #[cfg(feature = "csv")]
        ListFormat::ThreatExchangeCsv => read_threatexchange_csv(text),
        #[cfg(not(feature = "csv"))]
        ListFormat::ThreatExchangeCsv => Err(ImportError::Format {
            format: "threatexchange-csv",
            detail: "this build of redline-client has no CSV support (feature `csv`)".into(),
        }),
        ListFormat::StopNciiJson => read_stopncii_json(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redline_proto::merkle::leaf_hash;

    fn log() -> Vec<(u64, Vec<u8>)> {
        let add = |b: u8, t: &str, len: usize, case: &str| AddEntry {
            signal_type: t.into(),
            hash: vec![b; len],
            quality: 90,
            labels: vec!["ncii".into(), "two words".into()],
            legal_basis: "consent withdrawn".into(),
            case_ref: case.into(),
        };
        let l0 = entry::encode_add(add(1, "pdq", 32, "c1"), 1_000_000).unwrap();
        let l1 = entry::encode_add(add(2, "pdq", 32, ""), 2_000_000).unwrap();
        let l2 = entry::encode_add(add(3, "md5", 16, ""), 3_000_000).unwrap();
        let l3 = entry::encode_retract(0, &leaf_hash(&l0), "fp", 4_000_000).unwrap();
        vec![(0, l0), (1, l1), (2, l2), (3, l3)]
    }

    #[test]
    fn retractions_are_applied() {
        let h = hashes_from_leaves(&log()).unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].retracted_at_ms, Some(4_000_000));
        assert!(h[1].active() && h[2].active());
    }

    #[test]
    #[cfg(feature = "csv")]
    fn csv_round_trips_the_active_set() {
        let h = hashes_from_leaves(&log()).unwrap();
        let mut buf = Vec::new();
        let s = write_threatexchange_csv(&mut buf, "a.example", &h).unwrap();
        assert_eq!(s.written, 2);
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with("signal_type,signal_str,collab,category,tags\n"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "pdq,{},a.example,POSITIVE_CLASS,ncii two_words",
            "02".repeat(32)
        )));
        let plan = read_threatexchange_csv(&text).unwrap();
        assert_eq!(plan.read, 2);
        assert_eq!(plan.records.len(), 2);
        assert_eq!(plan.records[1].signal.signal_type, "md5");
        assert_eq!(plan.records[0].labels, vec!["ncii", "two_words"]);
    }

    #[test]
    #[cfg(feature = "csv")]
    fn csv_import_validates_and_dedups() {
        let pdq = "ab".repeat(32);
        let text = format!(
            "collab,signal_type,signal_str,category,tags\nx,pdq,{pdq},POSITIVE_CLASS,\nx,pdq,{},,\nx,url,http://x,,\nx,pdq,{pdq},NEGATIVE_CLASS,\n",
            pdq.to_uppercase()
        );
        let plan = read_threatexchange_csv(&text).unwrap();
        assert_eq!(plan.records.len(), 1);
        assert_eq!(plan.duplicates_in_file, 1);
        assert_eq!(plan.skipped_not_active, 1);
        assert_eq!(plan.skipped_unsupported.get("url"), Some(&1));
        let e = read_threatexchange_csv("signal_type,signal_str\npdq,abc\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(read_threatexchange_csv("a,b\n1,2\n").is_err());
    }

    /// A log with a `vpdq` entry (3 frames) and a `video_md5` one.
    fn video_log() -> Vec<(u64, Vec<u8>)> {
        let frames: Vec<redline_proto::vpdq::FrameHash> = (0..3u8)
            .map(|k| redline_proto::vpdq::FrameHash {
                pdq: [k + 1; 32],
                quality: 80 + k,
                timestamp_ms: u32::from(k) * 1000,
            })
            .collect();
        let add = |t: &str, hash: Vec<u8>| AddEntry {
            signal_type: t.into(),
            hash,
            labels: vec!["ncii".into()],
            ..Default::default()
        };
        let v = redline_proto::vpdq::encode(&frames).unwrap();
        vec![
            (0, entry::encode_add(add("vpdq", v), 1_000).unwrap()),
            (
                1,
                entry::encode_add(add("video_md5", vec![9; 16]), 2_000).unwrap(),
            ),
        ]
    }

    /// vPDQ leaves export as python-threatexchange's signal string and import back to the same
    /// bytes; `video_md5` keeps pytx's name both ways.
    #[cfg(feature = "csv")]
    #[test]
    fn csv_carries_video_signals_in_pytx_forms() {
        let h = hashes_from_leaves(&video_log()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(
            write_threatexchange_csv(&mut buf, "a.example", &h)
                .unwrap()
                .written,
            2
        );
        let text = String::from_utf8(buf).unwrap();
        let first = format!("{},80,0.0", "01".repeat(32));
        assert!(
            text.contains(&format!("vpdq,\"[\"\"{first}\"\", \"\"")),
            "{text}"
        );
        assert!(
            text.contains(&format!("video_md5,{}", "09".repeat(16))),
            "{text}"
        );
        let plan = read_threatexchange_csv(&text).unwrap();
        let got: Vec<(&str, &str)> = plan
            .records
            .iter()
            .map(|r| (r.signal.signal_type.as_str(), r.signal.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("vpdq", h[0].value.as_str()),
                ("video_md5", h[1].value.as_str())
            ]
        );
        let e =
            read_threatexchange_csv("signal_type,signal_str\nvpdq,\"[\"\"zz\"\"]\"\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn stopncii_carries_video_md5() {
        let h = hashes_from_leaves(&video_log()).unwrap();
        let mut buf = Vec::new();
        let s = write_stopncii_json(&mut buf, &h).unwrap();
        assert_eq!(
            (s.written, s.unsupported),
            (1, 1),
            "vpdq has no StopNCII type"
        );
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["hashRecords"][0]["signalType"], "VideoMD5");
        let plan = read_stopncii_json(std::str::from_utf8(&buf).unwrap()).unwrap();
        assert_eq!(plan.records[0].signal.signal_type, "video_md5");
    }

    #[test]
    fn stopncii_round_trips_with_status() {
        let h = hashes_from_leaves(&log()).unwrap();
        let mut buf = Vec::new();
        let s = write_stopncii_json(&mut buf, &h).unwrap();
        assert_eq!(
            s,
            ExportSummary {
                written: 2,
                unsupported: 1
            }
        );
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["count"], 2);
        assert_eq!(v["hashRecords"][0]["hashStatus"], "Withdrawn");
        assert_eq!(v["hashRecords"][0]["caseNumbers"]["c1"], "Withdrawn");
        assert_eq!(v["hashRecords"][1]["hashStatus"], "Active");
        assert_eq!(v["hashRecords"][1]["signalType"], "ImagePDQ");
        let plan = read_stopncii_json(std::str::from_utf8(&buf).unwrap()).unwrap();
        assert_eq!(plan.records.len(), 1);
        assert_eq!(plan.records[0].signal.value, "02".repeat(32));
        assert_eq!(plan.skipped_not_active, 1);
    }

    #[test]
    fn stopncii_later_records_replace_earlier_ones() {
        let pdq = "cd".repeat(32);
        let text = format!(
            r#"[{{"signalType":"ImagePDQ","hashValue":"{pdq}","hashStatus":"Active","caseNumbers":{{"k":"Active"}}}},
                {{"signalType":"ImagePDQ","hashValue":"{pdq}","hashStatus":"Withdrawn","caseNumbers":{{}}}},
                {{"signalType":"VideoTMK","hashValue":"zz","hashStatus":"Active"}}]"#
        );
        let plan = read_stopncii_json(&text).unwrap();
        assert!(plan.records.is_empty());
        assert_eq!(plan.duplicates_in_file, 1);
        assert_eq!(plan.skipped_unsupported.get("VideoTMK"), Some(&1));
        let bad = r#"{"hashRecords":[{"signalType":"ImagePDQ","hashValue":"00"}]}"#;
        let e = read_stopncii_json(bad).unwrap_err();
        assert!(e.to_string().contains("hashRecords[0]"), "{e}");
    }
}
