//! Lists of checkpoints decoded with a cap on how many are kept.
//!
//! A protobuf message of N checkpoints with every field empty is 2·N bytes on the wire and
//! N × `size_of::<Checkpoint>()` (over 100 bytes, doubled by `Vec` growth) once decoded: a 4 MiB
//! `GetCheckpoints` answer or `Gossip` request decodes into ~170 MiB. The adversarial-peer
//! suite measured exactly that (a million bogus origins: +157 MiB per answer). The types here
//! decode the same wire format as `GetCheckpointsResponse`/`GossipResponse` and
//! `GossipRequest`, keep the first `MAX_CHECKPOINTS` checkpoints and skip the rest without
//! allocating, so what one message costs is bounded by its byte size plus `MAX_CHECKPOINTS`
//! small structs.

use bytes::{Buf, BufMut};
use prost::encoding::{message, skip_field, string, DecodeContext, WireType};
use prost::DecodeError;
use redline_proto::pb::Checkpoint;

/// Most checkpoints kept from one answer or gossip request; a peer holding more origins than
/// this is lying or broken (the network has dozens), and the rest are ignored.
pub const MAX_CHECKPOINTS: usize = 4096;

/// Largest checkpoint list read from a peer, bytes: `MAX_CHECKPOINTS` real checkpoints
/// (origin name, root, a signed note of a few hundred bytes) fit in well under half of it.
pub const MAX_CHECKPOINT_LIST_BYTES: usize = 4 * 1024 * 1024;

fn keep(
    list: &mut Vec<Checkpoint>,
    skipped: &mut u64,
    tag: u32,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    if list.len() < MAX_CHECKPOINTS {
        let mut cp = Checkpoint::default();
        message::merge(wire_type, &mut cp, buf, ctx)?;
        list.push(cp);
        Ok(())
    } else {
        *skipped += 1;
        skip_field(wire_type, tag, buf, ctx)
    }
}

/// `GetCheckpointsResponse` / `GossipResponse` (`repeated Checkpoint checkpoints = 1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointAnswer {
    /// The first [`MAX_CHECKPOINTS`].
    pub checkpoints: Vec<Checkpoint>,
    /// How many more there were.
    pub skipped: u64,
}

impl prost::Message for CheckpointAnswer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for cp in &self.checkpoints {
            message::encode(1, cp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => keep(
                &mut self.checkpoints,
                &mut self.skipped,
                tag,
                wire_type,
                buf,
                ctx,
            ),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.checkpoints)
    }

    fn clear(&mut self) {
        self.checkpoints.clear();
        self.skipped = 0;
    }
}

/// `GossipRequest` (`string from = 1; repeated Checkpoint checkpoints = 2`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GossipIn {
    /// Who says it is calling.
    pub from: String,
    /// The first [`MAX_CHECKPOINTS`].
    pub checkpoints: Vec<Checkpoint>,
    /// How many more there were.
    pub skipped: u64,
}

impl prost::Message for GossipIn {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.from.is_empty() {
            string::encode(1, &self.from, buf);
        }
        for cp in &self.checkpoints {
            message::encode(2, cp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => string::merge(wire_type, &mut self.from, buf, ctx),
            2 => keep(
                &mut self.checkpoints,
                &mut self.skipped,
                tag,
                wire_type,
                buf,
                ctx,
            ),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.from.is_empty() {
            0
        } else {
            string::encoded_len(1, &self.from)
        }) + message::encoded_len_repeated(2, &self.checkpoints)
    }

    fn clear(&mut self) {
        self.from.clear();
        self.checkpoints.clear();
        self.skipped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use redline_proto::pb::{GetCheckpointsResponse, GossipRequest};

    fn cp(i: usize) -> Checkpoint {
        Checkpoint {
            origin: format!("o{i}"),
            tree_size: i as u64,
            root_hash: vec![1; 32],
            signed_note: b"note".to_vec(),
            prefix: None,
        }
    }

    #[test]
    fn same_wire_format_as_the_generated_messages() {
        let list: Vec<Checkpoint> = (0..10).map(cp).collect();
        let bytes = GetCheckpointsResponse {
            checkpoints: list.clone(),
        }
        .encode_to_vec();
        let a = CheckpointAnswer::decode(bytes.as_slice()).unwrap();
        assert_eq!((a.checkpoints.clone(), a.skipped), (list.clone(), 0));
        assert_eq!(a.encode_to_vec(), bytes);

        let bytes = GossipRequest {
            from: "peer".into(),
            checkpoints: list.clone(),
        }
        .encode_to_vec();
        let g = GossipIn::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            (g.from.as_str(), &g.checkpoints, g.skipped),
            ("peer", &list, 0)
        );
        assert_eq!(g.encode_to_vec(), bytes);
    }

    #[test]
    fn keeps_the_first_max_checkpoints_and_counts_the_rest() {
        let n = MAX_CHECKPOINTS + 1000;
        let bytes = GossipRequest {
            from: String::new(),
            checkpoints: vec![Checkpoint::default(); n],
        }
        .encode_to_vec();
        assert_eq!(bytes.len(), 2 * n, "an empty checkpoint is two bytes");
        let g = GossipIn::decode(bytes.as_slice()).unwrap();
        assert_eq!(g.checkpoints.len(), MAX_CHECKPOINTS);
        assert_eq!(g.skipped, 1000);
        // Malformed input past the cap is still an error, not silently accepted.
        let mut bad = bytes.clone();
        bad.extend_from_slice(&[0x12, 0x05, 0x00]);
        assert!(GossipIn::decode(bad.as_slice()).is_err());
    }
}
