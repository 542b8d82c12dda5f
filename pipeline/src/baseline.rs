//! The floor replay is measured against: reading a capture and parsing each
//! line into a `serde_json::Value`, and nothing else. One function, so that
//! the standalone program (`examples/parse_json.rs`) and the replay bench
//! (`benches/replay.rs`) time the same loop.

use std::io::{BufRead, BufReader, Read};

/// Lines parsed (blank ones skipped) and how many were JSON objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Non-blank lines.
    pub lines: u64,
    /// Lines that parsed into a JSON object.
    pub objects: u64,
}

/// Reads `input` line by line (a 1 MiB buffer, one line buffer reused) and
/// parses every non-blank line into a `serde_json::Value`, dropped at once.
/// A line that is not JSON counts as a line but not an object.
pub fn parse_values(input: impl Read) -> std::io::Result<Parsed> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut line = Vec::with_capacity(4096);
    let mut parsed = Parsed::default();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(parsed);
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.is_empty() {
            continue;
        }
        parsed.lines += 1;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) {
            parsed.objects += u64::from(value.is_object());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_objects() {
        let input = b"{\"a\":1}\n\n[1]\nnot json\n{\"b\":{\"c\":\"d\"}}";
        assert_eq!(parse_values(&input[..]).unwrap(), Parsed { lines: 4, objects: 2 });
    }
}
