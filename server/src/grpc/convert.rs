//! Conversions between wire messages and domain values, with the validation they need.

use crate::node::{NewSignal, NodeError};
use redline_proto::pb;
use redline_proto::signal::SignalType;

/// Parses request signals; an error names the position and what is wrong.
pub fn parse_signals(signals: &[pb::Signal]) -> Result<Vec<NewSignal>, NodeError> {
    signals
        .iter()
        .enumerate()
        .map(|(position, s)| {
            let bad = |source| NodeError::BadSignal { position, source };
            let signal_type = SignalType::from_name(&s.signal_type).map_err(bad)?;
            let hash = signal_type.parse_hex(&s.value).map_err(bad)?;
            if s.quality > 100 {
                return Err(NodeError::BadEntry {
                    position,
                    source: redline_proto::entry::EntryError::Quality(s.quality),
                });
            }
            Ok(NewSignal {
                signal_type,
                hash,
                quality: s.quality,
            })
        })
        .collect()
}
