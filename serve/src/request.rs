//! Reading an `/invocations` body into rows of features: the two content
//! types, the row limit, and a precise error for each way a body is wrong.
//! Pure and synchronous: bytes in, rows or a [`ServeError`] out.

use pulse_schemas::{Features, FEATURE_COUNT};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::ServeError;

/// SageMaker's payload limit for a real-time endpoint: 6 MB, counted as
/// `InvokeEndpoint` counts it (6 × 2^20 bytes). Larger bodies answer 413.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// Rows one request may carry by default; more answer 413.
pub const DEFAULT_MAX_ROWS: usize = 10_000;

/// How a body is written, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/csv`: one row per line, 46 comma-separated numbers, no header.
    Csv,
    /// `application/json`: `{"instances": [[46 numbers], ...]}`.
    Json,
}

impl Format {
    /// Reads a `Content-Type` header: the media type decides, parameters
    /// (`; charset=utf-8`) are ignored, case does not matter.
    pub fn from_content_type(value: Option<&str>) -> Result<Format, ServeError> {
        let Some(value) = value else {
            return Err(ServeError::UnsupportedContentType { found: None });
        };
        match media_type(value).as_str() {
            "text/csv" => Ok(Format::Csv),
            "application/json" => Ok(Format::Json),
            _ => Err(ServeError::UnsupportedContentType { found: Some(value.to_owned()) }),
        }
    }

    /// Parses a body of this format into rows, refusing more than `max_rows`.
    pub fn parse(self, body: &[u8], max_rows: usize) -> Result<Vec<Features>, ServeError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ServeError::EmptyBody);
        }
        match self {
            Format::Csv => parse_csv(body, max_rows),
            Format::Json => parse_json(body, max_rows),
        }
    }

    /// Parses an `?explain=true` body, read once: its rows and, beside them,
    /// the references they are explained against (JSON only).
    pub fn parse_explained(self, body: &[u8], max_rows: usize) -> Result<(Vec<Features>, Vec<Features>), ServeError> {
        if self != Format::Json {
            return Err(ServeError::Json(REFERENCES_SHAPE.to_owned()));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ServeError::EmptyBody);
        }
        let envelope = envelope(body)?;
        let rows = instances_of(envelope.instances, max_rows)?;
        let references = references_of(envelope.references, rows.len())?;
        Ok((rows, references))
    }
}

/// `Text/CSV; charset=utf-8` → `text/csv`.
fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Checks an `Accept` header allows `application/json` (absent allows
/// anything). Quality values are not weighed: listing it at all is enough.
pub fn check_accept(value: Option<&str>) -> Result<(), ServeError> {
    let Some(value) = value else { return Ok(()) };
    if value.trim().is_empty() {
        return Ok(());
    }
    let ok =
        value.split(',').map(media_type).any(|m| matches!(m.as_str(), "application/json" | "application/*" | "*/*"));
    if ok {
        Ok(())
    } else {
        Err(ServeError::NotAcceptable { accept: value.to_owned() })
    }
}

/// A value as quoted in an error: at most 40 characters.
fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// One value: a decimal number Rust's `f64` parser reads, finite.
fn number(text: &str, row: usize, column: usize) -> Result<f64, ServeError> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(ServeError::NotFinite { row, column, text: excerpt(text) }),
        Err(_) => Err(ServeError::NotANumber { row, column, text: excerpt(text) }),
    }
}

/// `text/csv`: lines split on `\n` (a `\r` before it is dropped), trailing
/// newlines ignored, a UTF-8 byte-order mark ignored, blanks around a value
/// trimmed. A blank line between rows is an error, so row k is always line k.
fn parse_csv(body: &[u8], max_rows: usize) -> Result<Vec<Features>, ServeError> {
    let text = std::str::from_utf8(body).map_err(|e| ServeError::NotUtf8 {
        row: 1 + body[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim_end_matches(['\n', '\r']);
    let rows = 1 + text.bytes().filter(|&b| b == b'\n').count();
    if rows > max_rows {
        return Err(ServeError::TooManyRows { rows, max: max_rows });
    }
    let mut out = Vec::with_capacity(rows);
    for (i, line) in text.split('\n').enumerate() {
        let row = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            return Err(ServeError::EmptyRow { row });
        }
        let got = line.split(',').count();
        if got != FEATURE_COUNT {
            return Err(ServeError::Width { row, got });
        }
        let mut features = [0.0; FEATURE_COUNT];
        for (j, (slot, cell)) in features.iter_mut().zip(line.split(',')).enumerate() {
            *slot = number(cell.trim(), row, j + 1)?;
        }
        out.push(features);
    }
    Ok(out)
}

const JSON_SHAPE: &str =
    "expected {\"instances\": [[46 numbers], ...]} or {\"instances\": [{\"features\": [46 numbers]}, ...]}";

/// The envelope; keys other than `instances` and `references` are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    instances: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    references: Option<Vec<&'a RawValue>>,
}

const REFERENCES_SHAPE: &str = "explain=true needs application/json with \"references\": one row per instance (or one row for all), each the same customer's vector about 14 days earlier; the reasons explain what moved the score since";

/// The references of an `?explain=true` body beside its instances: one per
/// row or a single one for all, checked like the rows themselves.
fn references_of(references: Option<Vec<&RawValue>>, rows: usize) -> Result<Vec<Features>, ServeError> {
    let references = references.ok_or_else(|| ServeError::Json(REFERENCES_SHAPE.to_owned()))?;
    let parsed = read_rows(&references).map_err(|e| ServeError::Json(format!("references: {e}")))?;
    match parsed.len() {
        1 => Ok(vec![parsed[0]; rows]),
        n if n == rows => Ok(parsed),
        n => Err(ServeError::Json(format!("{n} references for {rows} instances: {REFERENCES_SHAPE}"))),
    }
}

/// The object form of an instance; keys other than `features` are ignored.
#[derive(Deserialize)]
struct Instance<'a> {
    #[serde(borrow)]
    features: Option<Vec<&'a RawValue>>,
}

/// `application/json`. Values are kept as their JSON text and read with the
/// same parser as CSV, so `0.1` sent either way is the same `f64`, and a
/// string, `null` or boolean is reported with its row and column.
fn parse_json(body: &[u8], max_rows: usize) -> Result<Vec<Features>, ServeError> {
    instances_of(envelope(body)?.instances, max_rows)
}

fn envelope(body: &[u8]) -> Result<Envelope<'_>, ServeError> {
    // serde fills a struct from an array by position: `[[[row]]]` was
    // scored, and a bare `[[row], ...]` got "row 1: found 1".
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ServeError::Json(format!(
            "the body is a JSON array; send the rows as an object's \"instances\": {JSON_SHAPE}"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ServeError::Json(format!("invalid JSON body ({e}): {JSON_SHAPE}")))
}

fn instances_of(instances: Option<Vec<&RawValue>>, max_rows: usize) -> Result<Vec<Features>, ServeError> {
    let Some(instances) = instances else {
        return Err(ServeError::Json(format!("no \"instances\" key: {JSON_SHAPE}")));
    };
    if instances.is_empty() {
        return Err(ServeError::Json(format!("\"instances\" is empty: send at least one row; {JSON_SHAPE}")));
    }
    if instances.len() > max_rows {
        return Err(ServeError::TooManyRows { rows: instances.len(), max: max_rows });
    }
    read_rows(&instances)
}

/// Rows of the JSON forms: arrays of 46 numbers, or objects with `features`.
fn read_rows(instances: &[&RawValue]) -> Result<Vec<Features>, ServeError> {
    let mut out = Vec::with_capacity(instances.len());
    for (i, instance) in instances.iter().enumerate() {
        let row = i + 1;
        let bad = |why: &str| ServeError::Json(format!("row {row}: {why}: {JSON_SHAPE}"));
        let text = instance.get();
        let values: Vec<&RawValue> = if text.starts_with('[') {
            serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?
        } else if text.starts_with('{') {
            let object: Instance<'_> = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
            object.features.ok_or_else(|| bad("an object without \"features\""))?
        } else {
            return Err(bad(&format!("found {}", excerpt(text))));
        };
        if values.len() != FEATURE_COUNT {
            return Err(ServeError::Width { row, got: values.len() });
        }
        let mut features = [0.0; FEATURE_COUNT];
        for (j, (slot, value)) in features.iter_mut().zip(&values).enumerate() {
            let text = value.get();
            // A JSON number starts with '-' or a digit; anything else
            // (a string, null, true) is not one, whatever it holds.
            if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                return Err(ServeError::NotANumber { row, column: j + 1, text: excerpt(text) });
            }
            *slot = number(text, row, j + 1)?;
        }
        out.push(features);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seed: f64) -> Vec<String> {
        (0..FEATURE_COUNT).map(|i| format!("{}", seed + i as f64 * 0.5)).collect()
    }

    fn csv(rows: &[Vec<String>], newline: &str) -> String {
        rows.iter().map(|r| r.join(",")).collect::<Vec<_>>().join(newline)
    }

    #[test]
    fn content_types_are_read_by_media_type() {
        assert_eq!(Format::from_content_type(Some("text/csv")), Ok(Format::Csv));
        assert_eq!(Format::from_content_type(Some("Text/CSV; charset=utf-8")), Ok(Format::Csv));
        assert_eq!(Format::from_content_type(Some("application/json;charset=UTF-8")), Ok(Format::Json));
        for bad in [Some("application/x-npy"), Some("text/plain"), None] {
            let err = Format::from_content_type(bad).unwrap_err();
            assert_eq!(err.status(), 415, "{err}");
        }
    }

    #[test]
    fn accept_must_allow_json() {
        assert!(check_accept(None).is_ok());
        assert!(check_accept(Some("application/json")).is_ok());
        assert!(check_accept(Some("text/csv, */*;q=0.1")).is_ok());
        let err = check_accept(Some("text/csv")).unwrap_err();
        assert_eq!(err.status(), 406);
    }

    #[test]
    fn csv_tolerates_crlf_trailing_newlines_bom_and_blanks() {
        let rows = [row(1.0), row(2.0)];
        let plain = Format::Csv.parse(csv(&rows, "\n").as_bytes(), 10).unwrap();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[1][0], 2.0);
        assert_eq!(plain[1][45], 2.0 + 45.0 * 0.5);
        for variant in [
            format!("{}\n", csv(&rows, "\n")),
            format!("{}\r\n", csv(&rows, "\r\n")),
            format!("\u{feff}{}\r\n\r\n", csv(&rows, "\r\n")),
            csv(&rows, "\n").replace(',', " , "),
        ] {
            assert_eq!(Format::Csv.parse(variant.as_bytes(), 10).unwrap(), plain, "{variant:?}");
        }
    }

    #[test]
    fn csv_errors_name_row_and_column() {
        let mut rows = vec![row(1.0), row(2.0), row(3.0)];
        rows[1].pop();
        let err = Format::Csv.parse(csv(&rows, "\n").as_bytes(), 10).unwrap_err();
        assert_eq!(err, ServeError::Width { row: 2, got: 45 });
        assert_eq!(err.to_string(), "row 2: expected 46 values (features-v1), got 45");

        let mut rows = vec![row(1.0), row(2.0), row(3.0)];
        rows[2][4] = "abc".into();
        let err = Format::Csv.parse(csv(&rows, "\n").as_bytes(), 10).unwrap_err();
        assert_eq!(err, ServeError::NotANumber { row: 3, column: 5, text: "abc".into() });
        assert!(err.to_string().starts_with("row 3, column 5 ("), "{err}");

        for text in ["NaN", "inf", "-infinity", "1e400"] {
            let mut rows = vec![row(1.0)];
            rows[0][45] = text.into();
            let err = Format::Csv.parse(csv(&rows, "\n").as_bytes(), 10).unwrap_err();
            assert_eq!(err, ServeError::NotFinite { row: 1, column: 46, text: text.into() });
        }

        let body = format!("{}\n\n{}", csv(&[row(1.0)], ""), csv(&[row(2.0)], ""));
        assert_eq!(Format::Csv.parse(body.as_bytes(), 10).unwrap_err(), ServeError::EmptyRow { row: 2 });
    }

    #[test]
    fn a_header_line_gets_a_hint() {
        let header = pulse_schemas::FEATURE_NAMES.join(",");
        let body = format!("{header}\n{}", csv(&[row(1.0)], ""));
        let err = Format::Csv.parse(body.as_bytes(), 10).unwrap_err();
        assert!(err.to_string().ends_with("(send no header line)"), "{err}");
    }

    #[test]
    fn empty_bodies_non_utf8_and_row_limits() {
        for body in ["", "\n", " \r\n "] {
            assert_eq!(Format::Csv.parse(body.as_bytes(), 10).unwrap_err(), ServeError::EmptyBody);
            assert_eq!(Format::Json.parse(body.as_bytes(), 10).unwrap_err(), ServeError::EmptyBody);
        }
        let mut body = csv(&[row(1.0), row(2.0)], "\n").into_bytes();
        let second = body.iter().position(|&b| b == b'\n').unwrap() + 2;
        body[second] = 0xff;
        assert_eq!(Format::Csv.parse(&body, 10).unwrap_err(), ServeError::NotUtf8 { row: 2 });

        let body = csv(&[row(1.0), row(2.0), row(3.0)], "\n");
        assert_eq!(Format::Csv.parse(body.as_bytes(), 2).unwrap_err(), ServeError::TooManyRows { rows: 3, max: 2 });
        assert_eq!(Format::Csv.parse(body.as_bytes(), 3).unwrap().len(), 3);
    }

    #[test]
    fn json_takes_arrays_and_feature_objects_alike() {
        let a = row(1.0).join(",");
        let b = row(2.0).join(",");
        let arrays = Format::Json.parse(format!(r#"{{"instances": [[{a}], [{b}]]}}"#).as_bytes(), 10).unwrap();
        let objects = Format::Json
            .parse(
                format!(r#"{{"instances": [{{"features": [{a}]}}, {{"features": [{b}], "id": 7}}]}}"#).as_bytes(),
                10,
            )
            .unwrap();
        let from_csv = Format::Csv.parse(format!("{a}\n{b}").as_bytes(), 10).unwrap();
        assert_eq!(arrays, from_csv);
        assert_eq!(objects, from_csv);
    }

    #[test]
    fn json_errors_name_row_and_column() {
        let good = row(1.0).join(",");
        let mut short = row(2.0);
        short.pop();
        let short = short.join(",");
        let body = format!(r#"{{"instances": [[{good}], [{short}]]}}"#);
        assert_eq!(Format::Json.parse(body.as_bytes(), 10).unwrap_err(), ServeError::Width { row: 2, got: 45 });

        for (value, expected) in [
            ("\"1.5\"", ServeError::NotANumber { row: 1, column: 3, text: "\"1.5\"".into() }),
            ("null", ServeError::NotANumber { row: 1, column: 3, text: "null".into() }),
            ("1e400", ServeError::NotFinite { row: 1, column: 3, text: "1e400".into() }),
        ] {
            let mut r = row(1.0);
            r[2] = value.into();
            let body = format!(r#"{{"instances": [[{}]]}}"#, r.join(","));
            assert_eq!(Format::Json.parse(body.as_bytes(), 10).unwrap_err(), expected, "{value}");
        }

        for body in [r#"{"instances": []}"#, r#"{"rows": [[1]]}"#, r#"[[1, 2]]"#, r#"{"instances": [7]}"#, "{"] {
            let err = Format::Json.parse(body.as_bytes(), 10).unwrap_err();
            assert!(matches!(err, ServeError::Json(_)), "{body}: {err:?}");
            assert!(err.to_string().contains("instances"), "{err}");
        }
        // An array where the object belongs: named as such, never scored by
        // position (`[[[row]]]` was).
        let wrapped = format!("  [[[{good}]]]");
        for body in ["[[1, 2]]", wrapped.as_str()] {
            let err = Format::Json.parse(body.as_bytes(), 10).unwrap_err().to_string();
            assert!(err.contains("the body is a JSON array"), "{body}: {err}");
        }
        let err = Format::Json.parse(br#"{"instances": [7]}"#, 10).unwrap_err();
        assert!(err.to_string().starts_with("row 1: "), "{err}");

        let body = format!(r#"{{"instances": [[{good}], [{good}], [{good}]]}}"#);
        assert_eq!(Format::Json.parse(body.as_bytes(), 2).unwrap_err(), ServeError::TooManyRows { rows: 3, max: 2 });
    }
}
