//! Engine snapshots: an [`Engine`](crate::Engine)'s whole state as bytes, so a
//! long-running consumer killed at any moment resumes exactly where its last
//! checkpoint was.
//!
//! A checkpoint is {shard positions, engine snapshot}, taken between batches.
//! After a crash the consumer restores the engine and re-reads the stream from
//! the saved positions; every vector it emits from then on is the one it would
//! have emitted without the crash, bit for bit. So a snapshot holds everything
//! that affects a future output: each customer's clock, first time, held
//! events (with their spills and the held sessions' ids), window aggregates
//! (the thousandths, and the other numbers' exact `i128` sums and `f64` side
//! sums, bit for bit), the tutor table's slots, tutor switches, latest and
//! frozen times, timer fields; the tutor numbering; the counters and the
//! sampled peak state size. Container capacities, and the free room at the
//! front of the event and session-id buffers, are kept too, so
//! `state_size()` reports the same bytes and the buffers grow and shrink at
//! the same moments. What follows from the rest is rebuilt rather than
//! stored: the fingerprints, the id index's entries (its size is stored; it
//! has no tombstones, so a rebuilt one is the same), the W_7/W_14 cursors,
//! the active days, the timer heap (one entry per customer with a `queued`
//! time, which is its next due time) and its earliest due time.
//!
//! # Format
//!
//! ```text
//! "PULSESNP" (8 bytes) | format version (u32 LE) | frame*
//! frame = payload length (u32 LE) | payload | xxh3-64 of the payload (u64 LE)
//! ```
//!
//! The payloads, concatenated, are a sequence of
//! [postcard](https://docs.rs/postcard) records: one header record
//! (configuration, counters, peak bytes, how many tutors and customers
//! follow), the tutor ids in number order, then `(customer id, state)` in
//! increasing id order, so equal engines give equal bytes. Records never
//! straddle frames; a frame is cut after about 1 MiB. postcard is compact
//! (varints, no field names), has a documented stable wire format (1.x) and is
//! actively kept; bincode, the other obvious choice, is no longer maintained
//! (its last release is an empty crate saying so).
//! Nothing is compressed: a caller that wants it wraps the stream (zstd).
//!
//! Every frame is checked before a byte of it is decoded, so corruption gives
//! [`SnapshotError::ChecksumMismatch`] and truncation
//! [`SnapshotError::Truncated`]; what passes is still checked for the
//! invariants the engine relies on (a snapshot from a faulty build is refused,
//! not restored into an engine that could panic later). A restore either
//! returns a whole engine or an error, never part of one.
//!
//! The reader takes exactly the snapshot's bytes from its input, so a
//! snapshot can sit inside a larger file; give it a buffered reader (each
//! frame is a few small reads). Any change to what is stored bumps
//! [`SNAPSHOT_FORMAT_VERSION`]; other versions are refused, not guessed at.

use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::engine::EngineConfig;
use crate::stats::CountersSnapshot;
use crate::timers::TimerPolicy;

/// The first 8 bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PULSESNP";

/// The snapshot layout this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// A frame is cut once its payload reaches this size.
const FRAME_TARGET: usize = 1 << 20;
/// The largest payload a reader accepts (a single record may exceed the
/// target; none comes near this).
const MAX_FRAME: usize = 1 << 30;

/// Why a snapshot could not be written or read.
///
/// Not retryable with the same bytes: an I/O error may pass on a new
/// attempt, everything else means the snapshot (or the configuration) has to
/// change, e.g. start from an older checkpoint or from the stream's start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing failed.
    Io(io::Error),
    /// The input ended inside the snapshot (the part named).
    Truncated(&'static str),
    /// The input does not start with [`SNAPSHOT_MAGIC`].
    NotASnapshot {
        /// The first bytes found.
        found: Vec<u8>,
    },
    /// Written in a layout this build does not read.
    UnsupportedVersion {
        /// The snapshot's format version.
        found: u32,
        /// The one this build reads ([`SNAPSHOT_FORMAT_VERSION`]).
        supported: u32,
    },
    /// Taken under another configuration: restoring would change results.
    ConfigMismatch {
        /// The configuration stored in the snapshot.
        snapshot: EngineConfig,
        /// The configuration asked for.
        given: EngineConfig,
    },
    /// A frame's bytes are not the ones written.
    ChecksumMismatch {
        /// Offset of the frame's payload in the snapshot.
        offset: u64,
    },
    /// Intact bytes that do not make a valid engine (written by a faulty
    /// build, or not by this code at all).
    Corrupt(String),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Io(e) => write!(f, "snapshot I/O failed: {e}"),
            SnapshotError::Truncated(part) => write!(f, "snapshot is truncated: the input ends inside its {part}"),
            SnapshotError::NotASnapshot { found } => {
                write!(f, "not an engine snapshot: it starts with {found:02x?}, not {:?}", "PULSESNP")
            }
            SnapshotError::UnsupportedVersion { found, supported } => write!(
                f,
                "snapshot format version {found} is not supported (this build reads version {supported} only)"
            ),
            SnapshotError::ConfigMismatch { snapshot, given } => write!(
                f,
                "snapshot was taken with {snapshot:?} but the engine is configured with {given:?}; restoring it \
                 would change results (run with the snapshot's settings, or start without it)"
            ),
            SnapshotError::ChecksumMismatch { offset } => {
                write!(f, "snapshot is corrupt: checksum mismatch in the frame at byte {offset}")
            }
            SnapshotError::Corrupt(why) => write!(f, "snapshot is corrupt: {why}"),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// An I/O error, with a premature end of input as truncation of `part`.
fn read_error(e: io::Error, part: &'static str) -> SnapshotError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        SnapshotError::Truncated(part)
    } else {
        SnapshotError::Io(e)
    }
}

/// The first record: what the rest is, and the engine-wide state.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) config: ConfigImage,
    pub(crate) counters: CountersSnapshot,
    pub(crate) peak_state_bytes: u64,
    pub(crate) tutors: u64,
    pub(crate) customers: u64,
}

/// [`EngineConfig`] as stored (its own type, so the public one's layout is
/// free to change without changing the format silently).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum ConfigImage {
    TimersOff,
    TimersEvery { interval_ms: i64, max_silence_ms: i64 },
}

impl From<EngineConfig> for ConfigImage {
    fn from(c: EngineConfig) -> ConfigImage {
        match c.timers {
            TimerPolicy::Off => ConfigImage::TimersOff,
            TimerPolicy::Every { interval_ms, max_silence_ms } => {
                ConfigImage::TimersEvery { interval_ms, max_silence_ms }
            }
        }
    }
}

impl From<ConfigImage> for EngineConfig {
    fn from(c: ConfigImage) -> EngineConfig {
        let timers = match c {
            ConfigImage::TimersOff => TimerPolicy::Off,
            ConfigImage::TimersEvery { interval_ms, max_silence_ms } => {
                TimerPolicy::Every { interval_ms, max_silence_ms }
            }
        };
        EngineConfig { timers }
    }
}

/// Writes the header, then records cut into checksummed frames.
pub(crate) struct FrameWriter<W: Write> {
    inner: W,
    frame: Vec<u8>,
}

impl<W: Write> FrameWriter<W> {
    pub(crate) fn new(mut inner: W) -> Result<Self, SnapshotError> {
        inner.write_all(&SNAPSHOT_MAGIC).map_err(SnapshotError::Io)?;
        inner.write_all(&SNAPSHOT_FORMAT_VERSION.to_le_bytes()).map_err(SnapshotError::Io)?;
        Ok(FrameWriter { inner, frame: Vec::with_capacity(FRAME_TARGET + FRAME_TARGET / 4) })
    }

    /// Appends one record; writes the frame out once it is big enough.
    pub(crate) fn record<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SnapshotError> {
        let frame = std::mem::take(&mut self.frame);
        self.frame = postcard::to_extend(value, frame)
            .map_err(|e| SnapshotError::Io(io::Error::other(format!("encoding a snapshot record: {e}"))))?;
        if self.frame.len() >= FRAME_TARGET {
            self.write_frame()?;
        }
        Ok(())
    }

    fn write_frame(&mut self) -> Result<(), SnapshotError> {
        if self.frame.is_empty() {
            return Ok(());
        }
        if self.frame.len() > MAX_FRAME {
            return Err(SnapshotError::Io(io::Error::other(format!(
                "a snapshot record of {} bytes exceeds the {MAX_FRAME}-byte frame limit",
                self.frame.len()
            ))));
        }
        let hash = xxhash_rust::xxh3::xxh3_64(&self.frame);
        let w = &mut self.inner;
        w.write_all(&(self.frame.len() as u32).to_le_bytes())
            .and_then(|()| w.write_all(&self.frame))
            .and_then(|()| w.write_all(&hash.to_le_bytes()))
            .map_err(SnapshotError::Io)?;
        self.frame.clear();
        Ok(())
    }

    /// Writes the last frame and flushes.
    pub(crate) fn finish(mut self) -> Result<(), SnapshotError> {
        self.write_frame()?;
        self.inner.flush().map_err(SnapshotError::Io)
    }
}

/// Checks the header, then hands out records from checked frames.
pub(crate) struct FrameReader<R: Read> {
    inner: R,
    frame: Vec<u8>,
    /// Where the next record starts in `frame`.
    pos: usize,
    /// Bytes consumed from the input so far.
    offset: u64,
}

impl<R: Read> FrameReader<R> {
    pub(crate) fn new(mut inner: R) -> Result<Self, SnapshotError> {
        let mut magic = [0u8; 8];
        let mut got = 0;
        while got < magic.len() {
            match inner.read(&mut magic[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SnapshotError::Io(e)),
            }
        }
        if magic[..got] != SNAPSHOT_MAGIC[..got] {
            return Err(SnapshotError::NotASnapshot { found: magic[..got].to_vec() });
        }
        if got < magic.len() {
            return Err(SnapshotError::Truncated("header"));
        }
        let mut version = [0u8; 4];
        inner.read_exact(&mut version).map_err(|e| read_error(e, "header"))?;
        let version = u32::from_le_bytes(version);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { found: version, supported: SNAPSHOT_FORMAT_VERSION });
        }
        Ok(FrameReader { inner, frame: Vec::new(), pos: 0, offset: 12 })
    }

    fn read_frame(&mut self) -> Result<(), SnapshotError> {
        let mut len = [0u8; 4];
        self.inner.read_exact(&mut len).map_err(|e| read_error(e, "frame length"))?;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_FRAME {
            return Err(SnapshotError::Corrupt(format!("frame length {len} at byte {}", self.offset)));
        }
        self.offset += 4;
        self.frame.clear();
        // Grows as bytes arrive: a corrupt length cannot allocate a gigabyte
        // before the input runs out.
        let got = (&mut self.inner).take(len as u64).read_to_end(&mut self.frame).map_err(SnapshotError::Io)?;
        if got < len {
            return Err(SnapshotError::Truncated("frame"));
        }
        let mut hash = [0u8; 8];
        self.inner.read_exact(&mut hash).map_err(|e| read_error(e, "frame checksum"))?;
        if u64::from_le_bytes(hash) != xxhash_rust::xxh3::xxh3_64(&self.frame) {
            return Err(SnapshotError::ChecksumMismatch { offset: self.offset });
        }
        self.offset += len as u64 + 8;
        self.pos = 0;
        Ok(())
    }

    /// The next record, `what` naming it in errors; it may borrow from the
    /// frame until the next call.
    pub(crate) fn record<'a, T: Deserialize<'a>>(&'a mut self, what: &str) -> Result<T, SnapshotError> {
        if self.pos == self.frame.len() {
            self.read_frame()?;
        }
        let bytes = &self.frame[self.pos..];
        let (value, rest) =
            postcard::take_from_bytes(bytes).map_err(|e| SnapshotError::Corrupt(format!("undecodable {what}: {e}")))?;
        self.pos += bytes.len() - rest.len();
        Ok(value)
    }

    /// Checks that the last frame held nothing more; reads no further.
    pub(crate) fn finish(self) -> Result<(), SnapshotError> {
        if self.pos != self.frame.len() {
            return Err(SnapshotError::Corrupt(format!("{} bytes after the last record", self.frame.len() - self.pos)));
        }
        Ok(())
    }
}
