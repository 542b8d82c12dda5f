//! Cutting a capture into batches of lines for the decoders.
//!
//! The reader reads the input straight into the buffer a batch will carry
//! and records where each line starts and ends, so a line's bytes are copied
//! once, by `read(2)` (or the decompressor), instead of a second time out of
//! a read buffer into the batch: that copy was about 6% of an unscored
//! replay's CPU. Only the piece of a line that straddles two batches is
//! copied again. The decoders hand emptied buffers back ([`Recycle`]), so
//! the reader reads into memory that is already mapped and written.

use std::io::{ErrorKind, Read};
use std::sync::mpsc;

use pulse_schemas::capture::TOO_LONG_EXCERPT_BYTES;

/// A consecutive run of lines.
#[derive(Debug, Default)]
pub(crate) struct LineBatch {
    /// The lines, possibly with their terminators and a piece of the next
    /// line after the last one: only the spans count.
    pub(crate) bytes: Vec<u8>,
    /// Each line's `(start, end)` in `bytes`, terminators (`\n` and any
    /// `\r` before it) left out.
    pub(crate) spans: Vec<(usize, usize)>,
    /// 1-based number of the first line.
    pub(crate) first_line: u64,
    /// The lines longer than the limit (by index in the batch, in order):
    /// each stands in `spans` as an empty line.
    pub(crate) too_long: Vec<(usize, TooLong)>,
}

impl LineBatch {
    /// Each line's bytes, in order.
    pub(crate) fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.spans.iter().map(|&(start, end)| &self.bytes[start..end])
    }

    /// Adds the line `bytes[start..end]` (its `\n` already left out),
    /// leaving out the `\r`s it ends with.
    fn push(&mut self, start: usize, mut end: usize) {
        while end > start && self.bytes[end - 1] == b'\r' {
            end -= 1;
        }
        self.spans.push((start, end));
    }
}

/// A line read past: its size, hash and first bytes.
#[derive(Debug)]
pub(crate) struct TooLong {
    pub(crate) bytes: u64,
    pub(crate) xxh3: u64,
    pub(crate) excerpt: Vec<u8>,
}

impl TooLong {
    fn start(bytes: &[u8]) -> (xxhash_rust::xxh3::Xxh3, u64, Vec<u8>) {
        let mut hash = xxhash_rust::xxh3::Xxh3::new();
        hash.update(bytes);
        (hash, bytes.len() as u64, bytes[..bytes.len().min(TOO_LONG_EXCERPT_BYTES)].to_vec())
    }
}

/// Where the decoders return the buffers of batches they are done with.
pub(crate) type Recycle = mpsc::Sender<Vec<u8>>;

/// Bytes asked of the input per read.
const READ_BYTES: usize = 128 << 10;

/// Reads lines into batches of `batch_lines`; a line longer than `limit`
/// bytes (`\r`s before its `\n` included) is read past, hashed, and stands
/// as an empty line with its [`TooLong`], so memory stays bounded whatever
/// the input (a file without newlines, `/dev/zero`).
pub(crate) struct LineReader<R> {
    input: R,
    batch_lines: usize,
    limit: usize,
    /// Buffers the decoders are done with; their bytes are initialised, so
    /// reading into them needs no zeroing.
    spare: mpsc::Receiver<Vec<u8>>,
    recycle: Recycle,
    /// What was read past the last batch's last line.
    carry: Vec<u8>,
    /// Lines cut so far (blank and too-long ones included).
    lines: u64,
    /// The size the last batch's bytes took, for the next new buffer.
    room: usize,
    eof: bool,
    /// A read error met after some lines of a batch: the batch goes out
    /// first, the error with the next call.
    failed: Option<std::io::Error>,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(input: R, batch_lines: usize, limit: usize) -> LineReader<R> {
        let (recycle, spare) = mpsc::channel();
        LineReader {
            input,
            batch_lines,
            limit,
            spare,
            recycle,
            carry: Vec::new(),
            lines: 0,
            room: 0,
            eof: false,
            failed: None,
        }
    }

    /// The sender the decoders return buffers to.
    pub(crate) fn recycle(&self) -> Recycle {
        self.recycle.clone()
    }

    /// Lines cut so far.
    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    /// The next batch (`batch_lines` lines, fewer only at the end), or
    /// `None` at the end of the input. A read that fails (a truncated
    /// compressed file) ends the input: the whole lines before it come out
    /// first, in a batch of their own, and the error with the next call.
    pub(crate) fn next_batch(&mut self) -> std::io::Result<Option<LineBatch>> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut batch = LineBatch {
            bytes: self.spare.try_recv().unwrap_or_default(),
            spans: Vec::with_capacity(self.batch_lines),
            first_line: self.lines + 1,
            too_long: Vec::new(),
        };
        // `bytes[..filled]` holds input; past it, initialised room to read into.
        let mut filled = self.carry.len();
        grow(&mut batch.bytes, filled + READ_BYTES, self.room);
        batch.bytes[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        // The line being read starts at `start`; no `\n` before `scan`.
        let (mut start, mut scan) = (0, 0);
        loop {
            while batch.spans.len() < self.batch_lines {
                let Some(at) = memchr::memchr(b'\n', &batch.bytes[scan..filled]) else {
                    scan = filled;
                    break;
                };
                let end = scan + at;
                if end - start > self.limit {
                    let (hash, bytes, excerpt) = TooLong::start(&batch.bytes[start..end]);
                    batch.too_long.push((batch.spans.len(), TooLong { bytes, xxh3: hash.digest(), excerpt }));
                    batch.spans.push((start, start));
                } else {
                    batch.push(start, end);
                }
                (start, scan) = (end + 1, end + 1);
            }
            if batch.spans.len() == self.batch_lines {
                self.carry.extend_from_slice(&batch.bytes[start..filled]);
                break;
            }
            if self.eof {
                if start < filled {
                    batch.push(start, filled);
                }
                break;
            }
            if filled - start > self.limit {
                // Nothing of this line is kept past here: the buffer goes
                // back to where it began.
                let too_long = self.read_past(&batch.bytes[start..filled])?;
                batch.too_long.push((batch.spans.len(), too_long));
                batch.spans.push((start, start));
                filled = start + self.carry.len();
                batch.bytes[start..filled].copy_from_slice(&self.carry);
                self.carry.clear();
                scan = start;
                continue;
            }
            grow(&mut batch.bytes, filled + READ_BYTES, 0);
            match self.input.read(&mut batch.bytes[filled..filled + READ_BYTES]) {
                Ok(0) => self.eof = true,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if batch.spans.is_empty() => return Err(e),
                Err(e) => {
                    // The piece of a line before the error is not a line.
                    self.failed = Some(e);
                    self.eof = true;
                    break;
                }
            }
        }
        self.lines += batch.spans.len() as u64;
        self.room = filled;
        Ok(if batch.spans.is_empty() { None } else { Some(batch) })
    }

    /// Reads on to the end of a line whose first bytes, `held`, are already
    /// past the limit, hashing it instead of keeping it; what was read past
    /// its end goes to `carry`.
    fn read_past(&mut self, held: &[u8]) -> std::io::Result<TooLong> {
        let (mut hash, mut bytes, mut excerpt) = TooLong::start(held);
        let mut chunk = vec![0; READ_BYTES];
        loop {
            let n = match self.input.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let (content, rest) = match memchr::memchr(b'\n', &chunk[..n]) {
                Some(at) => (&chunk[..at], Some(&chunk[at + 1..n])),
                None => (&chunk[..n], None),
            };
            hash.update(content);
            bytes += content.len() as u64;
            let room = TOO_LONG_EXCERPT_BYTES.saturating_sub(excerpt.len());
            excerpt.extend_from_slice(&content[..room.min(content.len())]);
            if let Some(rest) = rest {
                self.carry.extend_from_slice(rest);
                break;
            }
        }
        Ok(TooLong { bytes, xxh3: hash.digest(), excerpt })
    }
}

/// Makes `buf` at least `len` bytes long (initialised), and a new buffer
/// about `room` with an eighth to spare (up to 8 MiB), so a batch like the
/// last one fits without growing.
fn grow(buf: &mut Vec<u8>, len: usize, room: usize) {
    let want = len.max((room + room / 8).min(8 << 20));
    if buf.len() < want {
        buf.resize(want, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes a read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A line as cut: its bytes, or the size of a line too long to hold.
    type Cut = Result<Vec<u8>, u64>;

    /// Every batch's first line number and lines.
    fn cut(data: &[u8], step: usize, batch_lines: usize, limit: usize) -> Vec<(u64, Vec<Cut>)> {
        let mut reader = LineReader::new(Trickle { data, step }, batch_lines, limit);
        let mut batches = Vec::new();
        while let Some(batch) = reader.next_batch().unwrap() {
            let mut long = batch.too_long.iter().peekable();
            let lines = batch
                .lines()
                .enumerate()
                .map(|(i, line)| match long.next_if(|(at, _)| *at == i) {
                    Some((_, too_long)) => Err(too_long.bytes),
                    None => Ok(line.to_vec()),
                })
                .collect();
            batches.push((batch.first_line, lines));
            // As the decoders do: the reader then reads into a used buffer.
            reader.recycle().send(batch.bytes).unwrap();
        }
        batches
    }

    #[test]
    fn lines_are_cut_alike_whatever_the_reads_and_batches() {
        let mut data = Vec::new();
        let mut want = Vec::new();
        for i in 0..500 {
            let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37));
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
            want.push(line.into_bytes());
            if i % 50 == 0 {
                data.push(b'\n');
                want.push(Vec::new());
            }
        }
        for step in [1, 7, 100, 4096, usize::MAX] {
            for batch_lines in [1, 3, 64, 2048] {
                let batches = cut(&data, step, batch_lines, 1 << 20);
                let mut first = 1;
                let mut got = Vec::new();
                for (first_line, lines) in batches {
                    assert_eq!(first_line, first, "step {step}, {batch_lines} a batch");
                    assert!(lines.len() <= batch_lines);
                    first += lines.len() as u64;
                    got.extend(lines.into_iter().map(Result::unwrap));
                }
                assert_eq!(got, want, "step {step}, {batch_lines} a batch");
            }
        }
    }

    #[test]
    fn lines_past_the_limit_are_read_past_with_their_size_and_hash() {
        let long = vec![b'x'; 5000];
        let mut input = b"short\r\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nnext\r\r\nlast-without-newline\r");
        for step in [1, 64, 4096, usize::MAX] {
            let mut reader = LineReader::new(Trickle { data: &input, step }, 10, 100);
            let batch = reader.next_batch().unwrap().unwrap();
            let lines: Vec<&[u8]> = batch.lines().collect();
            assert_eq!(lines, [&b"short"[..], b"", b"next", b"last-without-newline"], "step {step}");
            let [(1, too_long)] = &batch.too_long[..] else { panic!("one too-long line: {:?}", batch.too_long) };
            assert_eq!(too_long.bytes, 5000);
            assert_eq!(too_long.xxh3, xxhash_rust::xxh3::xxh3_64(&long));
            assert_eq!(too_long.excerpt, &long[..TOO_LONG_EXCERPT_BYTES]);
            assert!(batch.bytes.len() < 5000 + 2 * READ_BYTES, "the long line is not held: {}", batch.bytes.len());
            assert!(reader.next_batch().unwrap().is_none());
            assert_eq!(reader.lines(), 4);
        }
        // Exactly at the limit is a line; one byte over is not, with or
        // without its newline.
        let batch = |data: &[u8]| LineReader::new(data, 10, 100).next_batch().unwrap().unwrap();
        assert!(batch(&[b'y'; 100]).too_long.is_empty());
        assert!(batch(&[b'y'; 100][..]).lines().eq([&[b'y'; 100][..]]));
        assert_eq!(batch(&[b'y'; 101]).too_long.len(), 1);
        let mut over = vec![b'y'; 101];
        over.extend_from_slice(b"\nz");
        let over = batch(&over);
        assert_eq!(over.too_long[0].0, 0);
        assert!(over.lines().eq([&b""[..], b"z"]));
    }

    /// Fails after handing out `data`.
    struct Truncated<'a>(&'a [u8]);

    impl Read for Truncated<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("truncated"));
            }
            let n = buf.len().min(self.0.len()).min(10);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_lines_before_a_failed_read_come_out_before_the_error() {
        let mut reader = LineReader::new(Truncated(b"one\ntwo\nthr"), 10, 100);
        let batch = reader.next_batch().unwrap().unwrap();
        assert!(batch.lines().eq([&b"one"[..], b"two"]));
        assert_eq!(reader.next_batch().unwrap_err().to_string(), "truncated");
        assert_eq!(reader.lines(), 2);
        let mut reader = LineReader::new(Truncated(b""), 10, 100);
        assert!(reader.next_batch().is_err());
    }

    #[test]
    fn an_empty_input_has_no_batch() {
        assert!(LineReader::new(&b""[..], 10, 100).next_batch().unwrap().is_none());
        let lines: Vec<Vec<u8>> =
            LineReader::new(&b"\n"[..], 10, 100).next_batch().unwrap().unwrap().lines().map(<[u8]>::to_vec).collect();
        assert_eq!(lines, [Vec::<u8>::new()]);
    }
}
