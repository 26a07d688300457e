//! Byte framing for persisted snapshots: little-endian integers, length-prefixed arrays, and a
//! CRC-32 trailer over everything written.
//!
//! An index of 100M hashes takes minutes to build and seconds to copy, so a node that restarts
//! loads what it saved instead of rebuilding it. The framing is shared with the node's catalog
//! snapshot (which embeds index snapshots), so there is one reader that bounds every length by
//! the bytes that are really left — a corrupt or hostile file gets an error, never an
//! allocation it asked for — and one checksum.
//!
//! Written by hand because the layout is a handful of flat arrays: a serialization framework
//! would add a copy of every array (or an `unsafe` cast) for no gain in safety.

use std::io::{Read, Write};
use thiserror::Error;

/// Why a snapshot could not be read. A caller treats any of them as "no snapshot": the data
/// it was derived from is still there to rebuild from.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Reading or writing the bytes failed.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not describe a valid snapshot (truncated, a length past the end, an
    /// inconsistent structure).
    #[error("snapshot is corrupt: {0}")]
    Corrupt(String),
    /// The checksum over the bytes does not match the trailer.
    #[error("snapshot checksum mismatch: trailer says {expected:08x}, bytes give {found:08x}")]
    Checksum {
        /// CRC-32 stored in the trailer.
        expected: u32,
        /// CRC-32 of the bytes read.
        found: u32,
    },
    /// A valid snapshot of something else: another format version, hash width or set of
    /// build options than the reader's.
    #[error("snapshot does not fit this build: {0}")]
    Incompatible(String),
    /// The writer was asked to save a state that cannot be saved (e.g. mid-way through a
    /// staged run).
    #[error("state cannot be saved now: {0}")]
    Unsavable(String),
}

/// Bytes converted per buffered step of an array.
const STEP: usize = 1 << 16;

/// Writes framed values to `W`, keeping the running checksum.
#[derive(Debug)]
pub struct SnapshotWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// A writer at the start of a snapshot.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
            buf: Vec::with_capacity(STEP),
            written: 0,
        }
    }

    /// Bytes written so far (without the trailer).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Raw bytes, no length prefix.
    pub fn put_raw(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.crc.update(bytes);
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// One byte.
    pub fn put_u8(&mut self, v: u8) -> Result<(), SnapshotError> {
        self.put_raw(&[v])
    }

    /// A little-endian `u32`.
    pub fn put_u32(&mut self, v: u32) -> Result<(), SnapshotError> {
        self.put_raw(&v.to_le_bytes())
    }

    /// A little-endian `u64`.
    pub fn put_u64(&mut self, v: u64) -> Result<(), SnapshotError> {
        self.put_raw(&v.to_le_bytes())
    }

    /// A length-prefixed byte string.
    pub fn put_bytes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.put_u64(bytes.len() as u64)?;
        self.put_raw(bytes)
    }

    /// A length-prefixed UTF-8 string.
    pub fn put_str(&mut self, s: &str) -> Result<(), SnapshotError> {
        self.put_bytes(s.as_bytes())
    }

    /// A length-prefixed array of `u32`.
    pub fn put_u32s(&mut self, values: &[u32]) -> Result<(), SnapshotError> {
        self.put_u64(values.len() as u64)?;
        self.put_words(values.iter().map(|v| v.to_le_bytes()))
    }

    /// A length-prefixed array of `u64`.
    pub fn put_u64s(&mut self, values: &[u64]) -> Result<(), SnapshotError> {
        self.put_u64(values.len() as u64)?;
        self.put_words(values.iter().map(|v| v.to_le_bytes()))
    }

    /// Like [`SnapshotWriter::put_u64s`], from an iterator of known length (the same bytes).
    pub fn put_u64s_iter(
        &mut self,
        values: impl ExactSizeIterator<Item = u64>,
    ) -> Result<(), SnapshotError> {
        self.put_u64(values.len() as u64)?;
        self.put_words(values.map(u64::to_le_bytes))
    }

    /// Fixed-size little-endian values, no length prefix, through the step buffer.
    pub fn put_words<const N: usize>(
        &mut self,
        values: impl Iterator<Item = [u8; N]>,
    ) -> Result<(), SnapshotError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for v in values {
            buf.extend_from_slice(&v);
            if buf.len() >= STEP {
                self.put_raw(&buf)?;
                buf.clear();
            }
        }
        let out = self.put_raw(&buf);
        self.buf = buf;
        out
    }

    /// Writes the checksum trailer and hands back the sink (to flush and sync).
    pub fn finish(mut self) -> Result<W, SnapshotError> {
        let crc = self.crc.clone().finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        Ok(self.inner)
    }
}

/// Reads framed values from `R`, a snapshot whose total length (trailer included) is known, so
/// every length read is checked against the bytes that are left before anything is allocated.
#[derive(Debug)]
pub struct SnapshotReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
    /// Bytes left before the trailer.
    remaining: u64,
    buf: Vec<u8>,
}

impl<R: Read> SnapshotReader<R> {
    /// A reader over a snapshot of `total_len` bytes, trailer included.
    pub fn new(inner: R, total_len: u64) -> Result<Self, SnapshotError> {
        let remaining = total_len
            .checked_sub(4)
            .ok_or_else(|| SnapshotError::Corrupt(format!("{total_len} bytes is too short")))?;
        Ok(Self {
            inner,
            crc: crc32fast::Hasher::new(),
            remaining,
            buf: Vec::new(),
        })
    }

    /// Bytes left before the trailer.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn take(&mut self, n: u64, what: &str) -> Result<(), SnapshotError> {
        if n > self.remaining {
            return Err(SnapshotError::Corrupt(format!(
                "{what} needs {n} bytes, {} are left",
                self.remaining
            )));
        }
        self.remaining -= n;
        Ok(())
    }

    /// Exactly `out.len()` raw bytes.
    pub fn raw(&mut self, out: &mut [u8], what: &str) -> Result<(), SnapshotError> {
        self.take(out.len() as u64, what)?;
        self.inner.read_exact(out)?;
        self.crc.update(out);
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self, what: &str) -> Result<u8, SnapshotError> {
        let mut b = [0; 1];
        self.raw(&mut b, what)?;
        Ok(b[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, what: &str) -> Result<u32, SnapshotError> {
        let mut b = [0; 4];
        self.raw(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, what: &str) -> Result<u64, SnapshotError> {
        let mut b = [0; 8];
        self.raw(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length of an array of `elem_bytes`-byte elements, refused unless that many bytes are
    /// left.
    pub fn len(&mut self, elem_bytes: u64, what: &str) -> Result<usize, SnapshotError> {
        let n = self.u64(what)?;
        let bytes = n.checked_mul(elem_bytes.max(1));
        match bytes {
            Some(b) if b <= self.remaining => Ok(n as usize),
            _ => Err(SnapshotError::Corrupt(format!(
                "{what}: {n} elements of {elem_bytes} bytes, {} bytes are left",
                self.remaining
            ))),
        }
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, max: usize, what: &str) -> Result<Vec<u8>, SnapshotError> {
        let n = self.len(1, what)?;
        if n > max {
            return Err(SnapshotError::Corrupt(format!(
                "{what}: {n} bytes, at most {max} expected"
            )));
        }
        let mut out = vec![0; n];
        self.raw(&mut out, what)?;
        Ok(out)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, max: usize, what: &str) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes(max, what)?)
            .map_err(|_| SnapshotError::Corrupt(format!("{what} is not UTF-8")))
    }

    /// A length-prefixed array of `u32`.
    pub fn u32s(&mut self, what: &str) -> Result<Vec<u32>, SnapshotError> {
        let n = self.len(4, what)?;
        self.words(n, what, u32::from_le_bytes)
    }

    /// A length-prefixed array of `u64`.
    pub fn u64s(&mut self, what: &str) -> Result<Vec<u64>, SnapshotError> {
        let n = self.len(8, what)?;
        self.words(n, what, u64::from_le_bytes)
    }

    /// Like [`SnapshotReader::u64s`], into any collection (the index's blocked arrays).
    pub(crate) fn u64s_into<C: Extend<u64> + Default>(
        &mut self,
        what: &str,
    ) -> Result<C, SnapshotError> {
        let n = self.len(8, what)?;
        let mut out = C::default();
        self.for_each(n, what, |v: [u8; 8]| {
            out.extend([u64::from_le_bytes(v)]);
            Ok(())
        })?;
        Ok(out)
    }

    /// `n` fixed-size values (no length prefix), converted through the step buffer.
    pub fn words<const N: usize, T>(
        &mut self,
        n: usize,
        what: &str,
        from: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, SnapshotError> {
        let mut out = Vec::with_capacity(n);
        self.for_each(n, what, |v| {
            out.push(from(v));
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` on each of `n` fixed-size values (no length prefix) as they are read, so a
    /// caller can build its own structure without holding a second copy of the array.
    pub fn for_each<const N: usize>(
        &mut self,
        n: usize,
        what: &str,
        mut f: impl FnMut([u8; N]) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        self.take((n as u64).saturating_mul(N as u64), what)?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut left = n * N;
        while left > 0 {
            let step = left.min(STEP / N * N);
            buf.resize(step, 0);
            self.inner.read_exact(&mut buf)?;
            self.crc.update(&buf);
            for c in buf.chunks_exact(N) {
                f(c.try_into().expect("exact chunks"))?;
            }
            left -= step;
        }
        self.buf = buf;
        Ok(())
    }

    /// Checks that every byte was read and that the trailer matches.
    pub fn finish(mut self) -> Result<R, SnapshotError> {
        if self.remaining != 0 {
            return Err(SnapshotError::Corrupt(format!(
                "{} bytes left after the last section",
                self.remaining
            )));
        }
        let mut b = [0; 4];
        self.inner.read_exact(&mut b)?;
        let expected = u32::from_le_bytes(b);
        let found = self.crc.clone().finalize();
        if expected != found {
            return Err(SnapshotError::Checksum { expected, found });
        }
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip() -> Vec<u8> {
        let mut w = SnapshotWriter::new(Vec::new());
        w.put_u32(7).unwrap();
        w.put_str("pdq").unwrap();
        w.put_u64s(&(0..100_000).collect::<Vec<u64>>()).unwrap();
        w.put_u32s(&[1, 2, 3]).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn values_come_back_and_the_trailer_checks() {
        let bytes = round_trip();
        let mut r = SnapshotReader::new(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(r.u32("a").unwrap(), 7);
        assert_eq!(r.string(16, "b").unwrap(), "pdq");
        let v = r.u64s("c").unwrap();
        assert_eq!(v.len(), 100_000);
        assert_eq!(v[99_999], 99_999);
        assert_eq!(r.u32s("d").unwrap(), vec![1, 2, 3]);
        r.finish().unwrap();
    }

    /// One flipped bit anywhere is caught: by the structure when it lands in a length, by the
    /// checksum otherwise.
    #[test]
    fn a_flipped_bit_is_refused() {
        let clean = round_trip();
        for at in [0, 5, 20, 400_000, clean.len() - 30, clean.len() - 1] {
            let mut bytes = clean.clone();
            bytes[at] ^= 0x10;
            let read = (|| {
                let mut r = SnapshotReader::new(&bytes[..], bytes.len() as u64)?;
                r.u32("a")?;
                r.string(16, "b")?;
                r.u64s("c")?;
                r.u32s("d")?;
                r.finish()
            })();
            assert!(read.is_err(), "flip at {at} went unnoticed");
        }
    }

    /// A length that claims more than the file holds is refused before anything is allocated.
    #[test]
    fn a_huge_length_allocates_nothing() {
        let mut w = SnapshotWriter::new(Vec::new());
        w.put_u64(u64::MAX / 2).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = SnapshotReader::new(&bytes[..], bytes.len() as u64).unwrap();
        let err = r.u64s("ids").unwrap_err();
        assert!(
            matches!(err, SnapshotError::Corrupt(ref m) if m.contains("ids")),
            "{err}"
        );
    }

    #[test]
    fn truncation_is_refused() {
        let bytes = round_trip();
        let cut = &bytes[..bytes.len() - 9];
        let mut r = SnapshotReader::new(cut, bytes.len() as u64).unwrap();
        r.u32("a").unwrap();
        r.string(16, "b").unwrap();
        r.u64s("c").unwrap();
        assert!(r.u32s("d").is_err());
    }
}
