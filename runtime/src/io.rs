//! Files in and out: an output is compressed by its extension (`.zst`,
//! `.gz`); an input is read by its first bytes, whatever its name.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::archive::{self, InputFormat, KinesisRecords};

/// How a file is compressed, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// Zstandard (`.zst`).
    Zstd,
    /// gzip (`.gz`).
    Gzip,
}

impl Compression {
    /// Judged by the file's extension (in any case: `.ZST` too).
    pub fn of(path: &Path) -> Compression {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        match ext.as_str() {
            "zst" | "zstd" => Compression::Zstd,
            "gz" | "gzip" => Compression::Gzip,
            _ => Compression::None,
        }
    }

    /// Judged by a file's first bytes: the zstd frame's (or a zstd
    /// skippable frame's) and gzip's magic numbers; anything else is plain.
    pub fn sniff(head: &[u8]) -> Compression {
        let skippable = head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18];
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || skippable {
            Compression::Zstd
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }
}

/// Counts the bytes read from the file itself (before decompression), for progress.
#[derive(Debug)]
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Relaxed);
        Ok(n)
    }
}

/// An opened input: the decompressed bytes, the file's size, and a counter of
/// the file bytes consumed so far.
pub struct Input {
    /// The decompressed content.
    pub reader: Box<dyn Read + Send>,
    /// Size of the file on disk.
    pub file_bytes: u64,
    /// File bytes read so far.
    pub consumed: Arc<AtomicU64>,
    /// What its records are: a Kinesis archive is read as capture lines
    /// ([`crate::archive`]).
    pub format: InputFormat,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("file_bytes", &self.file_bytes).finish_non_exhaustive()
    }
}

/// Opens a file for reading, decompressing what its first bytes say is
/// compressed; a Kinesis Data Streams for DynamoDB archive (told by its
/// first record, [`crate::archive::sniff`]) reads as the capture lines
/// `pulse capture --source kinesis` would have written.
pub fn open_input(path: &Path) -> Result<Input> {
    open(path, true)
}

/// [`open_input`] for a caller that reads in large blocks: a plain file's
/// reads go straight to the file, not through a buffer (a compressed
/// file's decoder reads through one either way).
pub fn open_input_unbuffered(path: &Path) -> Result<Input> {
    open(path, false)
}

/// The path whose metadata describes `path`: `/dev/stdin` for `-`
/// (standard input), where the same-file checks and a capture's size look;
/// `path` otherwise.
pub fn stdin_alias(path: &Path) -> &Path {
    if is_stdin(path) {
        Path::new("/dev/stdin")
    } else {
        path
    }
}

/// Whether `path` is `-`, standard input.
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn open(path: &Path, buffered: bool) -> Result<Input> {
    let (source, file_bytes): (Box<dyn Read + Send>, u64) = if is_stdin(path) {
        // Descriptor 0 itself, not /dev/stdin opened again: that fails for
        // a socket, and restarts a redirected file from its beginning. Its
        // size, when it is a file, for the progress bar.
        let size = std::fs::metadata(stdin_alias(path)).ok().filter(|m| m.is_file()).map_or(0, |m| m.len());
        (Box::new(io::stdin()), size)
    } else {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(file), size)
    };
    let consumed = Arc::new(AtomicU64::new(0));
    let mut raw = Counting { inner: source, read: consumed.clone() };
    // A compressed file named as a plain one (`capture.jsonl` holding
    // gzip) would otherwise read as lines of binary, every one a dead
    // letter. Peeked by reading, not seeking, so a pipe works too.
    let mut head = Vec::with_capacity(4);
    (&mut raw).take(4).read_to_end(&mut head).with_context(|| format!("cannot read {}", path.display()))?;
    // The bytes decide, not the name: a plain capture named `.zst` (or a
    // gzip one named `.zst`) was refused as "Unknown frame descriptor".
    let compression = Compression::sniff(&head);
    let raw = io::Cursor::new(head).chain(raw);
    let mut reader: Box<dyn Read + Send> = if !buffered && compression == Compression::None {
        Box::new(raw)
    } else {
        let counted = BufReader::with_capacity(1 << 20, raw);
        match compression {
            Compression::None => Box::new(counted),
            Compression::Zstd => Box::new(
                zstd::Decoder::with_buffer(counted).with_context(|| format!("{} is not zstd", path.display()))?,
            ),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(counted)),
        }
    };
    let (format, head) = archive::sniff(&mut reader).with_context(|| format!("cannot read {}", path.display()))?;
    let reader: Box<dyn Read + Send> = match format {
        InputFormat::Capture => Box::new(io::Cursor::new(head).chain(reader)),
        InputFormat::KinesisArchive => {
            Box::new(KinesisRecords::new(BufReader::with_capacity(1 << 20, io::Cursor::new(head).chain(reader))))
        }
    };
    Ok(Input { reader, file_bytes, consumed, format })
}

/// Blocks at least this large are written to a plain file directly, not
/// through its buffer.
const DIRECT_WRITE_BYTES: usize = 64 << 10;

/// A file being written, compressed by extension. Call [`Output::finish`]:
/// until then the file is written under a temporary name beside it
/// ([`Staged`]), and dropping the output without finishing removes that
/// and leaves whatever was at the path before. So a run that fails (a
/// truncated input, a full disk) or is interrupted never leaves a cut-off
/// file under the name a user reads as complete. `-` is standard output,
/// and a device or FIFO (`/dev/null`) is written in place.
pub struct Output {
    inner: OutputKind,
    path: String,
    staged: Option<Staged>,
}

enum OutputKind {
    Plain(BufWriter<File>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Output {
    /// Starts a file that replaces `path` when finished (its directory
    /// created if needed); `-` is standard output.
    pub fn create(path: &Path) -> Result<Output> {
        Output::open(path, true, true)
    }

    /// [`Output::create`], but a symbolic link at `path` is replaced by the
    /// file instead of having the file it points to replaced: for files
    /// kept in versions behind a link (`cur/model.json -> ../v3/model.json`:
    /// a new model must not overwrite v3).
    pub fn create_replacing(path: &Path) -> Result<Output> {
        Output::open(path, true, false)
    }

    /// A command's own scratch file (a temporary capture it reads back
    /// itself): written in place, and readable at its path once finished,
    /// whatever [`defer_commits`] says of the command's outputs.
    pub fn scratch(path: &Path) -> Result<Output> {
        Output::open(path, false, true)
    }

    fn open(path: &Path, staged: bool, follow_links: bool) -> Result<Output> {
        let (file, staged) = if is_stdin(path) {
            (stdout_file().context("cannot write to standard output")?, None)
        } else if !staged || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            // A device or FIFO cannot be replaced by a rename, nor half
            // written into a file someone reads as whole.
            (File::create(path).with_context(|| format!("cannot open {}", path.display()))?, None)
        } else {
            let (file, staged) = Staged::create_following(path, follow_links)?;
            (file, Some(staged))
        };
        let buffered = BufWriter::with_capacity(1 << 20, file);
        let inner = match Compression::of(path) {
            Compression::None => OutputKind::Plain(buffered),
            Compression::Zstd => OutputKind::Zstd(zstd::Encoder::new(buffered, 3)?),
            Compression::Gzip => OutputKind::Gzip(flate2::write::GzEncoder::new(buffered, flate2::Compression::fast())),
        };
        Ok(Output { inner, path: path.display().to_string(), staged })
    }

    /// Flushes and ends the file, and puts it in place.
    pub fn finish(self) -> Result<()> {
        self.finish_with(false)
    }

    /// [`Output::finish`], with the file's bytes on disk before it is put
    /// in place and its directory's entry on disk after (`fsync` of both):
    /// for files a power cut must not leave empty under their name, such
    /// as a model's, which a server loads at its next start. Not for the
    /// bulk outputs, whose cost it would add to every run.
    pub fn finish_durable(self) -> Result<()> {
        self.finish_with(true)
    }

    fn finish_with(self, durable: bool) -> Result<()> {
        let Output { inner, path, mut staged } = self;
        let file = match inner {
            OutputKind::Plain(w) => Ok(w),
            OutputKind::Zstd(w) => w.finish(),
            OutputKind::Gzip(w) => w.finish(),
        };
        // Standard output and devices are written in place: nothing to sync.
        let durable = durable && staged.is_some();
        file.and_then(|mut w| {
            w.flush()?;
            if durable {
                w.get_ref().sync_all()?;
            }
            Ok(())
        })
        .with_context(|| format!("cannot finish writing {path}"))?;
        match staged.take() {
            Some(mut staged) => {
                staged.sync_directory = durable;
                staged.commit()
            }
            None => Ok(()),
        }
    }
}

/// Standard output as a file of its own (its descriptor duplicated), so
/// that it is buffered and written like any output.
fn stdout_file() -> io::Result<File> {
    use std::os::fd::AsFd as _;
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

/// A file written beside its target (in the same directory, so the rename
/// stays on one file system) as `.NAME.XXXXXX.partial`, renamed over the
/// target by [`Staged::commit`]; dropped before that, it is removed and the
/// target is as it was. A symbolic link's target is what gets replaced, as
/// writing through the link would have. The file gets the permissions a
/// created file gets (0666 less the umask). A run killed by a signal it
/// does not handle leaves the temporary file (hidden, never read as the
/// output); the batch commands' ctrl-c handler calls [`remove_partials`].
#[derive(Debug)]
pub struct Staged {
    temp: Option<tempfile::TempPath>,
    target: std::path::PathBuf,
    /// Sync the target's directory after the rename ([`Output::finish_durable`]).
    sync_directory: bool,
}

/// The temporary files of every [`Staged`] not committed or dropped yet.
static PARTIALS: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

fn partials() -> std::sync::MutexGuard<'static, Vec<std::path::PathBuf>> {
    // A panic while holding it left a list that is still a list.
    PARTIALS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a command's finished outputs go ([`defer_commits`]).
#[derive(Debug)]
enum Commits {
    /// Each into place as it is finished (a library caller, a test).
    Now,
    /// Held until the command's end; these are finished so far.
    Deferred(Vec<Staged>),
    /// Put in place by [`commit_deferred`].
    Done,
    /// Thrown away by [`remove_partials`] (a signal, an error): an output
    /// finished later is thrown away too.
    Cancelled,
}

/// One state, under one lock, for the main thread's end of a command and a
/// signal handler's: whichever comes first decides, and the other sees it.
/// Lock order: this, then the list of partials, never the other way.
static COMMITS: std::sync::Mutex<Commits> = std::sync::Mutex::new(Commits::Now);

fn commits() -> std::sync::MutexGuard<'static, Commits> {
    COMMITS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// From now on a finished output ([`Staged::commit`]) waits for
/// [`commit_deferred`] instead of replacing its path at once: a command's
/// outputs then appear together at its end, or not at all. Each output used
/// to be renamed as its writer finished, so a ctrl-c between two renames
/// left old and new files side by side (and said they were all the old).
/// A command's own scratch files are not outputs: [`Output::scratch`].
pub fn defer_commits() {
    *commits() = Commits::Deferred(Vec::new());
}

/// Puts every output finished since [`defer_commits`] in place, holding the
/// lock [`remove_partials`] takes: a signal handler finds them all in place
/// ([`committed`]) or, first, none. Returns how many there were; an error if
/// the command was cancelled meanwhile, or a rename failed (the outputs
/// before it are in place then, the rest removed).
pub fn commit_deferred() -> Result<usize> {
    let mut state = commits();
    let waiting = match std::mem::replace(&mut *state, Commits::Done) {
        Commits::Deferred(waiting) => waiting,
        Commits::Now => {
            *state = Commits::Now;
            return Ok(0);
        }
        Commits::Done => return Ok(0),
        Commits::Cancelled => {
            *state = Commits::Cancelled;
            anyhow::bail!("the command was stopped: its outputs were not kept");
        }
    };
    let n = waiting.len();
    let mut list = partials();
    let mut result = Ok(());
    let mut left = Vec::new();
    for staged in waiting {
        if result.is_err() {
            left.push(staged);
            continue;
        }
        result = staged.persist(&mut list);
    }
    // Dropping what is left removes its files and takes the list's lock.
    drop(list);
    drop(left);
    result.map(|()| n)
}

/// Drops the outputs finished since [`defer_commits`] whose paths are
/// `targets` (their temporary files removed), so that [`commit_deferred`]
/// puts the others in place alone: a model whose second file could not be
/// written must not reach its directory half new, while the run's report
/// still does. Returns how many were dropped.
pub fn discard_deferred(targets: &[&Path]) -> usize {
    let mut state = commits();
    let Commits::Deferred(waiting) = &mut *state else { return 0 };
    let (dropped, kept): (Vec<Staged>, Vec<Staged>) =
        std::mem::take(waiting).into_iter().partition(|s| targets.contains(&s.target.as_path()));
    *waiting = kept;
    drop(state);
    let n = dropped.len();
    // Dropping them removes their files and takes the list's lock.
    drop(dropped);
    n
}

/// Whether [`commit_deferred`] put the command's outputs in place.
pub fn committed() -> bool {
    matches!(*commits(), Commits::Done)
}

/// Removes the temporary file of every output not put in place (still
/// being written, or finished and waiting for [`commit_deferred`]), for a
/// command stopping on a signal or an error; returns how many there were.
/// Outputs finished after it are removed too. The outputs' paths then hold
/// what they held before the run (unless [`committed`] already).
pub fn remove_partials() -> usize {
    let mut state = commits();
    let waiting = match std::mem::replace(&mut *state, Commits::Cancelled) {
        Commits::Deferred(waiting) => waiting,
        Commits::Done => {
            *state = Commits::Done;
            Vec::new()
        }
        Commits::Now | Commits::Cancelled => Vec::new(),
    };
    let n_waiting = waiting.len();
    // Each removes its file and its entry in the list below.
    drop(waiting);
    n_waiting + remove_unfinished()
}

fn remove_unfinished() -> usize {
    let mut list = partials();
    for temp in list.iter() {
        // Already gone is as good as removed; anything else leaves a
        // hidden file nobody reads, not worth failing the exit over.
        let _ = std::fs::remove_file(temp);
    }
    let n = list.len();
    list.clear();
    n
}

impl Staged {
    /// Creates the temporary file for `path` (its directory too, if needed).
    pub fn create(path: &Path) -> Result<(File, Staged)> {
        Staged::create_following(path, true)
    }

    /// [`Staged::create`]; with `follow_links` false a symbolic link at
    /// `path` is itself replaced ([`Output::create_replacing`]).
    fn create_following(path: &Path, follow_links: bool) -> Result<(File, Staged)> {
        let target = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() && follow_links => {
                std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
            }
            _ => path.to_owned(),
        };
        // Refused now: found at the rename, after the run's work, a
        // directory at the path failed the commit of every output after it;
        // and a device (`--report /dev/null`) would have been replaced by a
        // file, for a user allowed to (root). Output::create writes into a
        // device or FIFO itself, before it gets here.
        anyhow::ensure!(!target.is_dir(), "{} is a directory: name a file", path.display());
        anyhow::ensure!(
            std::fs::metadata(&target).map_or(true, |m| m.is_file()),
            "{} is not a regular file (a device or a FIFO): name a file",
            path.display()
        );
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = target.file_name().map_or("out".into(), |n| n.to_string_lossy().into_owned());
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let (file, temp) = builder
            .tempfile_in(dir)
            .with_context(|| format!("cannot create a file beside {}", path.display()))?
            .into_parts();
        partials().push(temp.to_path_buf());
        Ok((file, Staged { temp: Some(temp), target, sync_directory: false }))
    }

    /// The file being written, under its temporary name.
    pub fn temp_path(&self) -> &Path {
        self.temp.as_deref().expect("a staged file not committed has its temporary file")
    }

    /// Renames the file (written and flushed) over the target; after
    /// [`defer_commits`], at the command's end ([`commit_deferred`]); after
    /// [`remove_partials`], never (the file is removed, and this fails).
    pub fn commit(self) -> Result<()> {
        let mut state = commits();
        match &mut *state {
            Commits::Deferred(list) => {
                list.push(self);
                Ok(())
            }
            Commits::Cancelled => {
                let target = self.target.clone();
                drop(self);
                anyhow::bail!("the command was stopped: {} was not kept", target.display())
            }
            Commits::Now | Commits::Done => self.commit_now(),
        }
    }

    fn commit_now(self) -> Result<()> {
        self.persist(&mut partials())
    }

    /// Renames the file over the target, taking it off `partials` (the
    /// list of partials, locked by the caller).
    fn persist(mut self, partials: &mut Vec<std::path::PathBuf>) -> Result<()> {
        let temp = self.temp.take().expect("a staged file is committed once");
        partials.retain(|p| **p != *temp);
        temp.persist(&self.target)
            .map(drop)
            .map_err(|e| anyhow::Error::new(e.error))
            .with_context(|| format!("cannot write {}", self.target.display()))?;
        if self.sync_directory {
            // The rename survives a power cut once the directory is synced.
            let dir = match self.target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot sync {} after writing {}", dir.display(), self.target.display()))?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // The TempPath, dropped after this, removes the file.
        if let Some(temp) = &self.temp {
            partials().retain(|p| **p != **temp);
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            OutputKind::Plain(w) => w.write(buf),
            OutputKind::Zstd(w) => w.write(buf),
            OutputKind::Gzip(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            // A large block (a batch's lines, serialized elsewhere) goes to
            // the file as it is, after what the buffer holds: copying it
            // into the buffer first was one more pass over every byte
            // written (`BufWriter` only passes through blocks as large as
            // its own capacity).
            OutputKind::Plain(w) if buf.len() >= DIRECT_WRITE_BYTES => {
                w.flush()?;
                w.get_mut().write_all(buf)
            }
            OutputKind::Plain(w) => w.write_all(buf),
            OutputKind::Zstd(w) => w.write_all(buf),
            OutputKind::Gzip(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            OutputKind::Plain(w) => w.flush(),
            OutputKind::Zstd(w) => w.flush(),
            OutputKind::Gzip(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small writes go through the buffer and large ones past it, so the
    /// file must still hold every write in order.
    #[test]
    fn small_and_large_writes_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = Output::create(&path).unwrap();
        let mut want = Vec::new();
        for (i, len) in
            [10, DIRECT_WRITE_BYTES, 3, 1, DIRECT_WRITE_BYTES * 3 + 7, 5, DIRECT_WRITE_BYTES - 1].iter().enumerate()
        {
            let block: Vec<u8> = (0..*len).map(|k| b'a' + ((i * 7 + k) % 26) as u8).collect();
            out.write_all(&block).unwrap();
            want.extend_from_slice(&block);
        }
        out.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    /// A durable output lands as any other does, compressed or plain, in
    /// a directory given relatively too; on a device (written in place,
    /// nothing to sync) it is no error.
    #[test]
    fn a_durable_output_lands_and_a_device_takes_one() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["model.json", "model.json.zst"] {
            let path = dir.path().join(name);
            let mut out = Output::create_replacing(&path).unwrap();
            out.write_all(b"{\"kind\":\"gbt\"}").unwrap();
            out.finish_durable().unwrap();
            let mut text = String::new();
            open_input(&path).unwrap().reader.read_to_string(&mut text).unwrap();
            assert_eq!(text, "{\"kind\":\"gbt\"}", "{name}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file left: {leftovers:?}");
        let mut out = Output::create_replacing(Path::new("/dev/null")).unwrap();
        out.write_all(b"x").unwrap();
        out.finish_durable().unwrap();
    }

    /// An input reads as its text whatever its name: compressed under a
    /// plain extension, the extension in capitals, plain under a compressed
    /// one, one compression named as the other (the first bytes tell); a
    /// plain file shorter than the magic numbers reads whole.
    #[test]
    fn inputs_are_recognised_by_their_first_bytes_and_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"{\"a\":1}\n{\"b\":2}\n".repeat(100);
        for (written, read_as) in [
            ("c.jsonl.gz", "gz_named_plain.jsonl"),
            ("c.jsonl.zst", "zst_named_plain.jsonl"),
            ("c.jsonl.zst", "capitals.jsonl.ZST"),
            ("c.jsonl", "plain.jsonl"),
            ("c.jsonl", "plain_named_zst.jsonl.zst"),
            ("c.jsonl", "plain_named_gz.jsonl.gz"),
            ("c.jsonl.gz", "gz_named_zst.jsonl.zst"),
            ("c.jsonl.zst", "zst_named_gz.jsonl.gz"),
        ] {
            let path = dir.path().join(written);
            let mut out = Output::create(&path).unwrap();
            out.write_all(&text).unwrap();
            out.finish().unwrap();
            let renamed = dir.path().join(read_as);
            std::fs::rename(&path, &renamed).unwrap();
            for input in [open_input(&renamed).unwrap(), open_input_unbuffered(&renamed).unwrap()] {
                let mut got = Vec::new();
                let mut reader = input.reader;
                reader.read_to_end(&mut got).unwrap();
                assert_eq!(got, text, "{read_as}");
            }
        }
        let short = dir.path().join("short.jsonl");
        std::fs::write(&short, b"{}").unwrap();
        let mut got = Vec::new();
        open_input_unbuffered(&short).unwrap().reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"{}");
    }
}
