//! Checkpoints of a live run: where each shard is, and everything the run
//! holds that those positions depend on.
//!
//! A checkpoint is a barrier (see [`pulse_runtime::sink`]): the consumer first
//! flushes the sink, so every effect of every record up to the positions is
//! durable, then writes ONE file holding
//!
//! * per shard, the sequence number of the last record processed, and the
//!   shards read to their end ([`ShardCheckpoint`]);
//! * the processor's stream time and the run's running totals;
//! * the sink's resume state (e.g. output file lengths) and the capture
//!   file's length;
//! * the engine: every customer's windows and the timer queue (its snapshot,
//!   zstd-compressed).
//!
//! The file is written whole to a temporary name, fsynced and renamed over
//! the old one (then the directory is fsynced): after a crash at any instant
//! there is the old checkpoint or the new one, never a mix. A restart resumes
//! each shard AFTER its sequence number with the engine as it was then; the
//! records after it are read and applied again, which the engine's event-id
//! dedupe and the sinks' resume state make harmless.
//!
//! Layout: `pulse-checkpoint\n`, the header's length (u64, little endian),
//! the header (JSON, [`CheckpointHeader`]), the engine snapshot as one zstd
//! frame, then the xxh3-64 of everything before it (u64, little endian).
//! The whole file is checked before any of it is used: an edited header (a
//! shard's sequence number, an output length, the stream time) would
//! otherwise skip records or cut an output silently, so a mismatch refuses
//! to start and says what to do.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pulse_operators::{Engine, EngineConfig};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// The file format's version; a file of another version is refused.
/// Version 2 added the checksum of the whole file.
pub const FORMAT: u32 = 2;

const MAGIC: &[u8] = b"pulse-checkpoint\n";
/// A header longer than this is not a header (a damaged or foreign file).
const MAX_HEADER_BYTES: u64 = 1 << 30;

/// One shard's position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// The last record processed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// Read to its end (its children may run).
    #[serde(default)]
    pub finished: bool,
}

/// What a live run counted so far (carried across restarts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveTotals {
    /// Records processed (applied or dead-lettered).
    pub records: u64,
    /// Vectors emitted on records.
    pub vectors_event: u64,
    /// Vectors emitted by timers.
    pub vectors_timer: u64,
    /// Dead letters by reason code.
    pub invalid: BTreeMap<String, u64>,
    /// Times a shard's position had been trimmed by retention (records lost).
    pub trimmed: u64,
    /// Shards that vanished before they were read to their end.
    pub shards_lost: u64,
}

/// Everything in a checkpoint but the engine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// [`FORMAT`].
    pub format: u32,
    /// The stream's identity (`dynamodb-streams:ARN`, `kinesis:ARN`): a
    /// checkpoint of another stream is refused.
    pub stream: String,
    /// Wall time of writing (ms since the epoch).
    pub written_at_ms: i64,
    /// Positions by shard id.
    pub shards: BTreeMap<String, ShardCheckpoint>,
    /// The processor's stream time (ms), when a record carried one.
    pub stream_time_ms: Option<i64>,
    /// The engine configuration the snapshot was taken under; `None` when the
    /// run had no engine (`pulse capture`).
    pub engine: Option<String>,
    /// Running totals.
    pub totals: LiveTotals,
    /// The sink's [`pulse_runtime::sink::Sink::checkpoint_state`].
    pub sink: Option<serde_json::Value>,
    /// The capture file and its committed length.
    pub capture: Option<(PathBuf, u64)>,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// Positions, totals, resume states.
    pub header: CheckpointHeader,
    /// The engine as it was, when the run had one.
    pub engine: Option<Engine>,
}

/// How an engine configuration is recorded (and compared) in a checkpoint.
pub fn engine_label(config: &EngineConfig) -> String {
    format!("{config:?}")
}

/// A checkpoint kept in a local file.
#[derive(Clone, Debug)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> CheckpointFile {
        CheckpointFile { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the checkpoint, if there is one. `engine` is the configuration
    /// of the run resuming it (`None` for a run without an engine); a
    /// checkpoint made under another one is refused, since its timer queue
    /// and the flags would disagree.
    pub fn load(&self, engine: Option<EngineConfig>) -> Result<Option<Checkpoint>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot open checkpoint {}", self.path.display())),
        };
        let what = || format!("checkpoint {}", self.path.display());
        let size = file.metadata().with_context(what)?.len();
        if size < (MAGIC.len() + 16) as u64 {
            bail!("{} is too short to be a checkpoint", what());
        }
        verify_checksum(&file, size).with_context(what)?;
        let mut file = file;
        std::io::Seek::rewind(&mut file).with_context(what)?;
        let mut r = BufReader::with_capacity(1 << 20, file.take(size - 8));
        let mut magic = [0u8; MAGIC.len()];
        r.read_exact(&mut magic).with_context(|| format!("{} is too short to be a checkpoint", what()))?;
        if magic != MAGIC {
            bail!("{} is not a pulse checkpoint", what());
        }
        let mut len = [0u8; 8];
        r.read_exact(&mut len).with_context(what)?;
        let len = u64::from_le_bytes(len);
        if len > MAX_HEADER_BYTES {
            bail!("{} is damaged: a header of {len} bytes", what());
        }
        let mut header = vec![0u8; len as usize];
        r.read_exact(&mut header).with_context(|| format!("{} is truncated", what()))?;
        let header: CheckpointHeader =
            serde_json::from_slice(&header).with_context(|| format!("{} has an unreadable header", what()))?;
        if header.format != FORMAT {
            bail!("{} is format {}; this pulse reads format {FORMAT}", what(), header.format);
        }
        let engine = match (engine, &header.engine) {
            (None, None) => None,
            (Some(config), Some(label)) => {
                if *label != engine_label(&config) {
                    bail!(
                        "{} was made with engine {label}, this run has {}: run with the same timer options, \
                         or delete the checkpoint to start over",
                        what(),
                        engine_label(&config)
                    );
                }
                let decoder =
                    zstd::Decoder::with_buffer(r).with_context(|| format!("{}: engine state", what()))?.single_frame();
                Some(read_engine(config, decoder).with_context(|| format!("{}: cannot restore the engine", what()))?)
            }
            (Some(_), None) => {
                bail!("{} was made by `pulse capture` (no engine state): `pulse run` needs its own", what())
            }
            (None, Some(_)) => bail!("{} was made by `pulse run`: `pulse capture` needs its own", what()),
        };
        Ok(Some(Checkpoint { header, engine }))
    }

    /// Writes a checkpoint atomically (temporary file, fsync, rename, fsync
    /// of the directory). Blocking: call it off the async threads.
    pub fn save(&self, header: &CheckpointHeader, engine: Option<&Engine>) -> Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let written = (|| -> Result<()> {
            let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = Hashing { inner: BufWriter::with_capacity(1 << 20, file), hash: Xxh3::new() };
            let json = serde_json::to_vec(header).context("checkpoint header")?;
            w.write_all(MAGIC)?;
            w.write_all(&(json.len() as u64).to_le_bytes())?;
            w.write_all(&json)?;
            if let Some(engine) = engine {
                let mut z = zstd::Encoder::new(w, 3)?;
                write_engine(engine, &mut z).context("cannot write the engine state")?;
                w = z.finish()?;
            }
            let Hashing { inner: mut w, hash } = w;
            w.write_all(&hash.digest().to_le_bytes())?;
            w.flush()?;
            w.get_ref().sync_all()?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("cannot write checkpoint {}", tmp.display())));
        }
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), self.path.display()))?;
        // The rename is durable once the directory is.
        File::open(&dir).and_then(|d| d.sync_all()).with_context(|| format!("cannot sync {}", dir.display()))?;
        Ok(())
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Xxh3,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Checks the file's last 8 bytes against the xxh3-64 of all before them,
/// reading it once, in pieces.
fn verify_checksum(file: &File, size: u64) -> Result<()> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut hash = Xxh3::new();
    let mut left = size - 8;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = r.read(&mut buf[..left.min(1 << 20) as usize])?;
        if n == 0 {
            bail!("is truncated");
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    let mut stored = [0u8; 8];
    r.read_exact(&mut stored)?;
    if u64::from_le_bytes(stored) != hash.digest() {
        bail!(
            "is damaged or was edited: its checksum does not match its contents. Resuming from it could skip \
             records or cut outputs; restore an intact copy, or delete it to start over from the stream"
        );
    }
    Ok(())
}

/// The engine's snapshot, written (the one place pulse's live runs depend on
/// the engine's snapshot format).
fn write_engine(engine: &Engine, w: &mut impl Write) -> Result<()> {
    engine.write_snapshot(w)?;
    Ok(())
}

/// An engine restored from its snapshot.
fn read_engine(config: EngineConfig, r: impl Read) -> Result<Engine> {
    Ok(Engine::read_snapshot(config, r)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_schemas::capture::decode_line;

    fn header(stream: &str) -> CheckpointHeader {
        CheckpointHeader {
            format: FORMAT,
            stream: stream.into(),
            written_at_ms: 1,
            shards: [("s1".to_owned(), ShardCheckpoint { sequence_number: Some("42".into()), finished: false })]
                .into_iter()
                .collect(),
            stream_time_ms: Some(1_767_571_260_000),
            engine: Some(engine_label(&EngineConfig::default())),
            totals: LiveTotals { records: 3, ..LiveTotals::default() },
            sink: Some(serde_json::json!({"features": ["v.jsonl", 10]})),
            capture: None,
        }
    }

    #[test]
    fn a_checkpoint_round_trips_with_its_engine() {
        let dir = tempfile::tempdir().unwrap();
        let file = CheckpointFile::new(dir.path().join("cp"));
        assert!(file.load(Some(EngineConfig::default())).unwrap().is_none(), "no file, no checkpoint");

        let engine = Engine::new(EngineConfig::default());
        let line = br#"{"eventName":"INSERT","dynamodb":{"ApproximateCreationDateTime":1767571260,"NewImage":{"customer_id":{"S":"stu_1"},"sk":{"S":"EVT#1767571200000#e1"},"entity_type":{"S":"event"},"event_id":{"S":"e1"},"event_type":{"S":"login"},"ts":{"N":"1767571200000"}},"SequenceNumber":"42"}}"#;
        let mut out = Vec::new();
        engine.apply(&decode_line(line).unwrap(), &mut out);
        assert_eq!(out.len(), 1);
        file.save(&header("kinesis:arn"), Some(&engine)).unwrap();

        let loaded = file.load(Some(EngineConfig::default())).unwrap().expect("a checkpoint");
        assert_eq!(loaded.header.shards, header("kinesis:arn").shards);
        assert_eq!(loaded.header.totals.records, 3);
        let restored = loaded.engine.expect("an engine");
        assert_eq!(restored.customer_clock("stu_1"), Some(1_767_571_200_000));
        assert_eq!(restored.features_at("stu_1", 1_767_571_200_000), engine.features_at("stu_1", 1_767_571_200_000));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["cp"], "no temporary file is left behind");
    }

    #[test]
    fn foreign_or_mismatched_checkpoints_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        std::fs::write(&path, b"hello").unwrap();
        let err = CheckpointFile::new(&path).load(None).unwrap_err();
        assert!(format!("{err:#}").contains("too short") || format!("{err:#}").contains("not a pulse"), "{err:#}");

        let file = CheckpointFile::new(&path);
        file.save(&header("kinesis:arn"), Some(&Engine::new(EngineConfig::default()))).unwrap();
        let other = EngineConfig { timers: pulse_operators::TimerPolicy::Off };
        let err = file.load(Some(other)).unwrap_err();
        assert!(format!("{err:#}").contains("same timer options"), "{err:#}");
        let err = file.load(None).unwrap_err();
        assert!(format!("{err:#}").contains("pulse capture"), "{err:#}");
    }

    #[test]
    fn an_edited_or_damaged_checkpoint_is_refused_before_it_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let file = CheckpointFile::new(&path);
        file.save(&header("kinesis:arn"), Some(&Engine::new(EngineConfig::default()))).unwrap();
        let good = std::fs::read(&path).unwrap();
        assert!(file.load(Some(EngineConfig::default())).unwrap().is_some());

        // One digit of a shard's sequence number, in the JSON header.
        let at = good.windows(4).position(|w| w == b"\"42\"").expect("the sequence number") + 1;
        let mut edited = good.clone();
        edited[at] = b'9';
        // A flipped bit in the engine's state; the last byte of the checksum; one byte cut.
        let mut flipped = good.clone();
        let mid = good.len() - 20;
        flipped[mid] ^= 1;
        let mut trailer = good.clone();
        *trailer.last_mut().unwrap() ^= 0x80;
        for (what, bytes) in
            [("edited", edited), ("flipped", flipped), ("trailer", trailer), ("cut", good[..good.len() - 1].to_vec())]
        {
            std::fs::write(&path, &bytes).unwrap();
            let err = format!("{:#}", file.load(Some(EngineConfig::default())).unwrap_err());
            assert!(err.contains("checksum") || err.contains("truncated"), "{what}: {err}");
            assert!(err.contains(&path.display().to_string()), "{what}: names the file: {err}");
        }
    }
}
