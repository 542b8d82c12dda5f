//! Output files a live run can resume exactly after a crash.
//!
//! A [`ResumableFile`] is appended to and, at each checkpoint, committed:
//! flushed, ended at a frame boundary when compressed (a zstd frame, a gzip
//! member: concatenated frames are one valid file to every reader, pulse's
//! included), and fsynced; its length then goes into the checkpoint. A restart
//! truncates the file back to that length and appends from there. So whatever
//! was written after the last checkpoint (possibly half a line, after a
//! `kill -9`) is cut, the records behind it are read again and written again:
//! the file ends up exactly as an uninterrupted run would have written it.
//!
//! [`FileSink`] is the [`Sink`] of `pulse run --features-out/--dead-letter-out`:
//! vectors and dead letters as JSON Lines, in the same format as `pulse
//! replay` (the same writers).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::io::Compression;
use crate::process::{write_vector_line, Produced};
use crate::sink::Sink;

/// A file appended to between checkpoints and cut back to its last
/// checkpointed length on restart.
#[derive(Debug)]
pub struct ResumableFile {
    path: PathBuf,
    compression: Compression,
    state: WriteState,
    committed: u64,
}

enum WriteState {
    /// Plain text, or compressed with no frame open.
    Idle(BufWriter<File>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    /// A commit failed half-way; the file can no longer be trusted.
    Broken,
}

impl std::fmt::Debug for WriteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteState::Idle(_) => "Idle",
            WriteState::Zstd(_) => "Zstd",
            WriteState::Gzip(_) => "Gzip",
            WriteState::Broken => "Broken",
        })
    }
}

impl ResumableFile {
    /// Opens `path`: from scratch (created or truncated) when `resume_at` is
    /// `None`, else cut back to `resume_at` bytes. A file shorter than that was
    /// changed behind pulse's back: refused.
    pub fn open(path: &Path, resume_at: Option<u64>) -> Result<ResumableFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = match resume_at {
            None => File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            Some(len) => {
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot reopen {} to resume it", path.display()))?;
                let on_disk = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.len();
                if on_disk < len {
                    bail!(
                        "{} has {on_disk} bytes but the checkpoint says {len} were written: it was changed \
                         since; delete the checkpoint to start over",
                        path.display()
                    );
                }
                file.set_len(len).with_context(|| format!("cannot cut {} back to {len} bytes", path.display()))?;
                file
            }
        };
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        let committed = resume_at.unwrap_or(0);
        writer.seek(std::io::SeekFrom::Start(committed)).with_context(|| format!("cannot seek {}", path.display()))?;
        Ok(ResumableFile {
            // Absolute, as the checkpoint records it: a restart from another
            // directory, or naming the file another way, finds it again.
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            compression: Compression::of(path),
            state: WriteState::Idle(writer),
            committed,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends (buffered; durable only after [`ResumableFile::commit`]).
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let state = std::mem::replace(&mut self.state, WriteState::Broken);
        self.state = match (state, self.compression) {
            (WriteState::Idle(w), Compression::Zstd) => WriteState::Zstd(
                zstd::Encoder::new(w, 3).with_context(|| format!("cannot start zstd in {}", self.path.display()))?,
            ),
            (WriteState::Idle(w), Compression::Gzip) => {
                WriteState::Gzip(flate2::write::GzEncoder::new(w, flate2::Compression::fast()))
            }
            (other, _) => other,
        };
        let written = match &mut self.state {
            WriteState::Idle(w) => w.write_all(bytes),
            WriteState::Zstd(w) => w.write_all(bytes),
            WriteState::Gzip(w) => w.write_all(bytes),
            WriteState::Broken => bail!("{} failed earlier and is no longer written", self.path.display()),
        };
        written.with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Makes everything written so far durable (ending a compressed frame) and
    /// returns the file's length, the point a restart resumes from.
    pub fn commit(&mut self) -> Result<u64> {
        let path = self.path.display().to_string();
        let state = std::mem::replace(&mut self.state, WriteState::Broken);
        let mut writer = match state {
            WriteState::Idle(w) => w,
            WriteState::Zstd(e) => e.finish().with_context(|| format!("cannot end a zstd frame in {path}"))?,
            WriteState::Gzip(e) => e.finish().with_context(|| format!("cannot end a gzip member in {path}"))?,
            WriteState::Broken => bail!("{path} failed earlier and is no longer written"),
        };
        writer.flush().with_context(|| format!("cannot write {path}"))?;
        writer.get_ref().sync_data().with_context(|| format!("cannot sync {path}"))?;
        let len = writer.get_ref().metadata().with_context(|| format!("cannot stat {path}"))?.len();
        self.state = WriteState::Idle(writer);
        self.committed = len;
        Ok(len)
    }
}

/// Where a [`FileSink`] was at its last checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSinkState {
    /// The features file and its committed length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<(PathBuf, u64)>,
    /// The dead-letter file and its committed length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<(PathBuf, u64)>,
}

/// Whether `a` and `b` name one file: `f.jsonl`, `./f.jsonl`, its absolute
/// path and a link to it all do (compared as absolute paths, then, when
/// both exist, as resolved ones).
pub fn same_file(a: &Path, b: &Path) -> bool {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    absolute(a) == absolute(b)
        || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Where to resume `path` from, given what a checkpoint recorded of its
/// output (`was`: the file and its committed length): that length when the
/// checkpoint's file is `path`, else `None`, a new file (said on stderr: a
/// file that was meant to be resumed and is named differently would
/// otherwise start over silently).
pub fn resume_at(path: &Path, was: Option<&(PathBuf, u64)>, what: &str) -> Option<u64> {
    let (recorded, len) = was?;
    if same_file(recorded, path) {
        return Some(*len);
    }
    tracing::warn!(
        "{what} {} is not the one the checkpoint wrote ({}): it starts empty, with what comes after the checkpoint",
        path.display(),
        recorded.display()
    );
    None
}

/// Vectors and dead letters to JSON Lines files, resumable exactly.
#[derive(Debug)]
pub struct FileSink {
    features: Option<ResumableFile>,
    dead_letters: Option<ResumableFile>,
    buf: Vec<u8>,
}

impl FileSink {
    /// Opens the files; with `resume` (from a checkpoint), a file it names at
    /// the same path is cut back to its checkpointed length, any other file
    /// starts empty.
    pub fn open(
        features: Option<&Path>,
        dead_letters: Option<&Path>,
        resume: Option<&serde_json::Value>,
    ) -> Result<FileSink> {
        let state: FileSinkState = match resume {
            Some(v) => serde_json::from_value(v.clone()).context("the checkpoint's file-sink state is unreadable")?,
            None => FileSinkState::default(),
        };
        let open = |path: Option<&Path>, was: &Option<(PathBuf, u64)>, what| -> Result<Option<ResumableFile>> {
            path.map(|p| ResumableFile::open(p, resume_at(p, was.as_ref(), what))).transpose()
        };
        Ok(FileSink {
            features: open(features, &state.features, "the vectors' file")?,
            dead_letters: open(dead_letters, &state.dead_letters, "the dead letters' file")?,
            buf: Vec::with_capacity(1 << 16),
        })
    }
}

impl Sink for FileSink {
    async fn send(&mut self, produced: Produced) -> Result<()> {
        if let Some(f) = self.features.as_mut() {
            self.buf.clear();
            produced.vectors.iter().for_each(|v| write_vector_line(v, &mut self.buf));
            f.write_all(&self.buf)?;
        }
        if let Some(f) = self.dead_letters.as_mut() {
            self.buf.clear();
            produced.dead.iter().for_each(|d| d.write_json_line(&mut self.buf));
            f.write_all(&self.buf)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        for f in [self.features.as_mut(), self.dead_letters.as_mut()].into_iter().flatten() {
            f.commit()?;
        }
        Ok(())
    }

    fn checkpoint_state(&self) -> Option<serde_json::Value> {
        let at = |f: &Option<ResumableFile>| f.as_ref().map(|f| (f.path.clone(), f.committed));
        let state = FileSinkState { features: at(&self.features), dead_letters: at(&self.dead_letters) };
        Some(serde_json::to_value(state).expect("paths and lengths serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_all(path: &Path) -> String {
        let mut input = crate::io::open_input(path).unwrap();
        let mut s = String::new();
        input.reader.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn a_restart_cuts_what_was_written_after_the_last_commit() {
        for name in ["out.jsonl", "out.jsonl.zst", "out.jsonl.gz"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            let mut f = ResumableFile::open(&path, None).unwrap();
            f.write_all(b"one\n").unwrap();
            let at = f.commit().unwrap();
            f.write_all(b"two\n").unwrap();
            f.commit().unwrap();
            f.write_all(b"half a li").unwrap();
            // A crash: the buffered tail may or may not have reached the disk.
            drop(f);

            let mut resumed = ResumableFile::open(&path, Some(at)).unwrap();
            resumed.write_all(b"two\nthree\n").unwrap();
            resumed.commit().unwrap();
            assert_eq!(read_all(&path), "one\ntwo\nthree\n", "{name}");
        }
    }

    #[test]
    fn a_file_shorter_than_its_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.jsonl");
        std::fs::write(&path, b"abc").unwrap();
        let err = ResumableFile::open(&path, Some(10)).unwrap_err();
        assert!(format!("{err:#}").contains("changed"), "{err:#}");
    }

    #[test]
    fn the_sink_resumes_only_the_files_its_state_names() {
        let dir = tempfile::tempdir().unwrap();
        let features = dir.path().join("f.jsonl");
        let dead = dir.path().join("d.jsonl");
        std::fs::write(&features, b"kept\ncut").unwrap();
        std::fs::write(&dead, b"stale").unwrap();
        let state =
            serde_json::to_value(FileSinkState { features: Some((features.clone(), 5)), dead_letters: None }).unwrap();
        let mut sink = FileSink::open(Some(&features), Some(&dead), Some(&state)).unwrap();
        futures_flush(&mut sink);
        assert_eq!(std::fs::read(&features).unwrap(), b"kept\n");
        assert_eq!(std::fs::read(&dead).unwrap(), b"", "a file the state does not name starts empty");
        let saved: FileSinkState = serde_json::from_value(sink.checkpoint_state().unwrap()).unwrap();
        assert_eq!(saved.features, Some((features, 5)));
        assert_eq!(saved.dead_letters, Some((dead, 0)));
    }

    /// `./f.jsonl`, `dir/../dir/f.jsonl` or a link to it name the file the
    /// checkpoint wrote: it is resumed, not emptied (a restart from a
    /// script with absolute paths used to empty it silently).
    #[test]
    fn the_same_file_named_another_way_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let features = dir.path().join("f.jsonl");
        std::fs::write(&features, b"kept\ncut").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&features, &link).unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let roundabout = sub.join("..").join("f.jsonl");
        for spelled in [&roundabout, &link] {
            std::fs::write(&features, b"kept\ncut").unwrap();
            let state =
                serde_json::to_value(FileSinkState { features: Some((features.clone(), 5)), dead_letters: None })
                    .unwrap();
            let mut sink = FileSink::open(Some(spelled), None, Some(&state)).unwrap();
            futures_flush(&mut sink);
            assert_eq!(std::fs::read(&features).unwrap(), b"kept\n", "{}", spelled.display());
        }
        assert!(same_file(&features, &roundabout) && same_file(&features, &link));
        assert!(!same_file(&features, &dir.path().join("other.jsonl")));
    }

    fn futures_flush(sink: &mut FileSink) {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(sink.flush()).unwrap();
    }
}
