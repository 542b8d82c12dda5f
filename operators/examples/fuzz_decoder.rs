//! A structure-aware mutation fuzzer of the capture decoder and the engine
//! behind it (`scripts/fuzz.sh` runs it; CI a bounded run, a long run by hand).
//!
//! Each input starts from a line of the corpus (`scripts/fuzz/corpus/*.jsonl`:
//! real DynamoDB Streams records of every kind pulse reads), parsed as JSON
//! and mutated where it matters: keys dropped or renamed, values swapped for
//! other JSON types and for extreme numbers and strings, DynamoDB attribute
//! tags changed (`S`/`N`/`M`/`L`/`BOOL`/`NULL`/`SS`), subtrees spliced from
//! other records, images turned into lists; then, half the time, the text
//! itself (bytes flipped, inserted or cut, segments repeated, a BOM, NUL or
//! invalid UTF-8). One to four mutations per input, seeded: a run is
//! reproducible from `--seed`.
//!
//! Every input goes through [`decode_line`] (and the Lambda's decoder,
//! [`decode_record`]) and, when valid, through an
//! [`Engine`] with timers on stream time, as `pulse replay` applies it.
//! What must hold, whatever the input:
//!
//! * nothing panics;
//! * the capture decoder's fast reader and its serde reader
//!   ([`decode_line_serde`]) give the same result, reason text included;
//! * a valid record's creation time and event time lie in the contract's
//!   range (years 2000 to 2200), its amounts are finite;
//! * every feature of every vector is a finite number.
//!
//! An input that breaks one is written to `--crashes` (named by its hash)
//! and the run exits 1; `operators/tests/fuzz_regressions.rs` replays the
//! corpus and every kept crash in the tests.
//!
//! ```sh
//! cargo run --release -p pulse-operators --example fuzz_decoder -- --inputs 1000000 --seed 7
//! ```

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aws_lambda_events::event::dynamodb::EventRecord;
use pulse_operators::{Emission, Engine, EngineConfig};
use pulse_schemas::capture::{decode_line, decode_line_serde};
use pulse_schemas::lambda::decode_record;
use pulse_schemas::{EventKind, StreamChange, StreamRecord};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde_json::{Map, Value};

/// 2000-01-01 and 2200-01-01, in ms: the contract's plausible times.
const MIN_MS: f64 = 946_684_800_000.0;
const MAX_MS: f64 = 7_258_118_400_000.0;
/// Inputs per fresh engine (bounded state, and many first-record paths).
const ENGINE_EVERY: u64 = 4096;

struct Args {
    inputs: u64,
    seed: u64,
    corpus: PathBuf,
    crashes: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        inputs: 1_000_000,
        seed: 1,
        corpus: PathBuf::from("scripts/fuzz/corpus"),
        crashes: PathBuf::from("scripts/fuzz/crashes"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--inputs" => args.inputs = value()?.replace('_', "").parse().map_err(|e| format!("--inputs: {e}"))?,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--corpus" => args.corpus = value()?.into(),
            "--crashes" => args.crashes = value()?.into(),
            "-h" | "--help" => {
                return Err("usage: fuzz_decoder [--inputs N] [--seed S] [--corpus DIR] [--crashes DIR]".into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let corpus = match load_corpus(&args.corpus) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            eprintln!("the corpus {} holds no line", args.corpus.display());
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("cannot read the corpus {}: {e}", args.corpus.display());
            std::process::exit(2);
        }
    };
    let parsed: Vec<Value> = corpus.iter().filter_map(|l| serde_json::from_slice(l).ok()).collect();
    // Quiet panics: each one is reported once, with its input saved.
    panic::set_hook(Box::new(|_| {}));

    let mut rng = Pcg64Mcg::seed_from_u64(args.seed);
    let started = Instant::now();
    let (mut valid, mut invalid, mut vectors, mut failures) = (0u64, 0u64, 0u64, 0u64);
    let mut engine = new_engine();
    let mut out = Vec::new();
    let tenth = (args.inputs / 10).max(1);
    for n in 0..args.inputs {
        if n > 0 && n % tenth == 0 {
            eprintln!("fuzz_decoder: {n} inputs, {failures} failures, {:.0} s", started.elapsed().as_secs_f64());
        }
        if n % ENGINE_EVERY == 0 {
            engine = new_engine();
        }
        let input = mutate(&parsed, &corpus, &mut rng);
        let checked = panic::catch_unwind(AssertUnwindSafe(|| check(&input, &engine, &mut out)));
        let verdict = match checked {
            Ok(Ok(Some(n))) => {
                valid += 1;
                vectors += n;
                continue;
            }
            Ok(Ok(None)) => {
                invalid += 1;
                continue;
            }
            Ok(Err(broken)) => broken,
            Err(panic) => format!("panic: {}", panic_message(&panic)),
        };
        failures += 1;
        engine = new_engine();
        match save(&args.crashes, &input) {
            Ok(path) => eprintln!("input {n}: {verdict} (kept as {})", path.display()),
            Err(e) => eprintln!("input {n}: {verdict} (cannot keep it: {e})"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "fuzz_decoder: {} inputs (seed {}) in {seconds:.1} s, {:.0} inputs/s: {valid} valid ({vectors} vectors), \
         {invalid} refused as dead letters, {failures} failures",
        args.inputs,
        args.seed,
        args.inputs as f64 / seconds.max(1e-9),
    );
    if failures > 0 {
        std::process::exit(1);
    }
}

fn new_engine() -> Engine {
    Engine::new(EngineConfig::default())
}

/// Decodes and applies one input: `Some(vectors)` for a valid record,
/// `None` for one refused, `Err` for a broken invariant. The Lambda's
/// decoder (the event source mapping's records, read by
/// `aws_lambda_events`) gets the same input and must keep the same rules.
fn check(input: &[u8], engine: &Engine, out: &mut Vec<Emission>) -> Result<Option<u64>, String> {
    if let Ok(event_record) = serde_json::from_slice::<EventRecord>(input) {
        if let Ok(record) = decode_record(&event_record) {
            check_record(&record).map_err(|e| format!("the Lambda decoder: {e}"))?;
        }
    }
    let decoded = decode_line(input);
    let reference = decode_line_serde(input);
    if decoded != reference || format!("{decoded:?}") != format!("{reference:?}") {
        return Err(format!("the fast reader gave {decoded:?}, the serde reader {reference:?}"));
    }
    let Ok(record) = decoded else { return Ok(None) };
    check_record(&record)?;
    out.clear();
    if let Some(created) = record.created_ms {
        engine.advance_to(created.floor() as i64, out);
    }
    engine.apply(&record, out);
    for e in out.iter() {
        if let Some(i) = e.features.iter().position(|f| !f.is_finite()) {
            return Err(format!("feature {i} of {} is {}", e.customer_id.as_str(), e.features[i]));
        }
    }
    Ok(Some(out.len() as u64))
}

fn check_record(record: &StreamRecord<'_>) -> Result<(), String> {
    if let Some(created) = record.created_ms {
        if !(MIN_MS..MAX_MS).contains(&created) {
            return Err(format!("creation time {created} ms accepted"));
        }
    }
    let events = match &record.change {
        StreamChange::Insert(new) => vec![new],
        StreamChange::Modify { old, new } => old.iter().chain(new.iter()).collect(),
        StreamChange::Remove(old) => vec![old],
        StreamChange::TtlExpiry | StreamChange::NotAnEvent => Vec::new(),
    };
    for event in events {
        let ts = event.ts.millis() as f64;
        if !(MIN_MS..MAX_MS).contains(&ts) {
            return Err(format!("event time {ts} ms accepted"));
        }
        if let EventKind::Payment { amount, .. } = &event.kind {
            if !amount.is_finite() {
                return Err(format!("payment amount {amount} accepted"));
            }
        }
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn save(dir: &Path, input: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{:016x}.bin", xxhash_rust::xxh3::xxh3_64(input)));
    std::fs::write(&path, input)?;
    Ok(path)
}

/// Every non-empty line of every `.jsonl` file in `dir`.
fn load_corpus(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read(&file)?;
        lines.extend(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    Ok(lines)
}

/// One input: a corpus line, mutated in its structure, then maybe in its bytes.
fn mutate(parsed: &[Value], corpus: &[Vec<u8>], rng: &mut Pcg64Mcg) -> Vec<u8> {
    if parsed.is_empty() || rng.random_ratio(1, 20) {
        let mut bytes = corpus.choose(rng).cloned().unwrap_or_default();
        mutate_bytes(&mut bytes, rng);
        return bytes;
    }
    let mut value = parsed.choose(rng).cloned().unwrap_or(Value::Null);
    for _ in 0..rng.random_range(1..=4) {
        mutate_value(&mut value, parsed, rng);
    }
    let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
    if rng.random_bool(0.5) {
        mutate_bytes(&mut bytes, rng);
    }
    bytes
}

/// A node of `value` found by a random walk from the root: each level
/// stops there with probability 1/4 (a leaf always), so the attributes of
/// the images, four levels down, are reached about a third of the time.
fn random_node<'v>(mut value: &'v mut Value, rng: &mut Pcg64Mcg) -> &'v mut Value {
    loop {
        let n = match &*value {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        };
        if n == 0 || rng.random_ratio(1, 4) {
            return value;
        }
        let i = rng.random_range(0..n);
        value = match value {
            Value::Object(map) => map.values_mut().nth(i).expect("i < len"),
            Value::Array(items) => &mut items[i],
            _ => unreachable!("a leaf stops the walk"),
        };
    }
}

/// [`random_node`] of a record not to be changed (a donor), copied.
fn random_subtree(value: &Value, rng: &mut Pcg64Mcg) -> Value {
    let mut node = value;
    loop {
        let n = match node {
            Value::Object(map) => map.len(),
            Value::Array(items) => items.len(),
            _ => 0,
        };
        if n == 0 || rng.random_ratio(1, 4) {
            return node.clone();
        }
        let i = rng.random_range(0..n);
        node = match node {
            Value::Object(map) => map.values().nth(i).expect("i < len"),
            Value::Array(items) => &items[i],
            _ => unreachable!("a leaf stops the walk"),
        };
    }
}

/// Keys the decoder looks for: renaming into or out of them matters most.
const KEYS: &[&str] = &[
    "eventID",
    "eventName",
    "dynamodb",
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "userIdentity",
    "customer_id",
    "sk",
    "entity_type",
    "event_id",
    "event_type",
    "ts",
    "amount",
    "status",
    "side",
    "tutor_id",
    "session_id",
    "rating",
    "duration_min",
    "S",
    "N",
    "M",
    "L",
    "BOOL",
    "NULL",
    "SS",
    "NS",
    "B",
];
const WORDS: &[&str] = &[
    "INSERT",
    "MODIFY",
    "REMOVE",
    "event",
    "prediction",
    "login",
    "payment",
    "session_completed",
    "session_scheduled",
    "session_cancelled",
    "succeeded",
    "failed",
    "refunded",
    "dynamodb.amazonaws.com",
    "Service",
    "EVT#",
    "PRED#latest",
];

fn random_number(rng: &mut Pcg64Mcg) -> String {
    let choices = [
        "0",
        "-0",
        "1",
        "-1",
        "1e308",
        "1.7976931348623157e308",
        "-1.7976931348623157e308",
        "1e309",
        "5e-324",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "18446744073709551616",
        "946684800000",
        "7258118400000",
        "1766966400000",
        "1766966400",
        "1766966400000000",
        "0.5",
        "1e3",
        "NaN",
        "Infinity",
        "-inf",
        "0x10",
        " 5",
        "",
        "1_000",
        "1e-7",
        "123456789012345678901234567890",
    ];
    if rng.random_bool(0.8) {
        (*choices.choose(rng).unwrap()).to_owned()
    } else {
        format!("{}", rng.random::<i64>() as f64 * rng.random::<f64>())
    }
}

fn random_value(parsed: &[Value], rng: &mut Pcg64Mcg) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => serde_json::from_str(&random_number(rng)).unwrap_or(Value::from(rng.random::<i64>())),
        3 => Value::String(random_number(rng)),
        4 => Value::String((*WORDS.choose(rng).unwrap()).to_owned()),
        5 => Value::String("x".repeat(rng.random_range(0..5000))),
        6 => Value::String(["", "\u{0}", "\u{feff}", "é", "𝄞", "\\u0000", "\u{202e}"].choose(rng).unwrap().to_string()),
        7 => Value::Array(vec![]),
        8 => Value::Object(Map::new()),
        9 => {
            // A DynamoDB attribute of a random type.
            let tag = *["S", "N", "M", "L", "BOOL", "NULL", "SS", "NS", "B"].choose(rng).unwrap();
            let inner = match tag {
                "S" | "B" => Value::String((*WORDS.choose(rng).unwrap()).to_owned()),
                "N" => Value::String(random_number(rng)),
                "BOOL" | "NULL" => Value::Bool(true),
                "SS" | "NS" => Value::Array(vec![Value::String(random_number(rng))]),
                "M" => Value::Object(Map::new()),
                _ => Value::Array(vec![]),
            };
            Value::Object(Map::from_iter([(tag.to_owned(), inner)]))
        }
        10 => {
            // Deep nesting.
            let mut v = Value::Null;
            for _ in 0..rng.random_range(1..200) {
                v = Value::Array(vec![v]);
            }
            v
        }
        _ => {
            // A subtree of another record.
            parsed.choose(rng).map_or(Value::Null, |donor| random_subtree(donor, rng))
        }
    }
}

fn mutate_value(value: &mut Value, parsed: &[Value], rng: &mut Pcg64Mcg) {
    let replacement = random_value(parsed, rng);
    let node = random_node(value, rng);
    match rng.random_range(0..8) {
        // Replace the node.
        0..=2 => *node = replacement,
        // Drop, rename or add a key.
        3 => {
            if let Value::Object(map) = node {
                if let Some(key) = map.keys().cloned().collect::<Vec<_>>().choose(rng).cloned() {
                    let v = map.remove(&key).unwrap_or(Value::Null);
                    match rng.random_range(0..3) {
                        0 => {}
                        1 => {
                            map.insert((*KEYS.choose(rng).unwrap()).to_owned(), v);
                        }
                        _ => {
                            map.insert(key.to_uppercase(), v);
                        }
                    }
                }
            }
        }
        4 => {
            if let Value::Object(map) = node {
                map.insert((*KEYS.choose(rng).unwrap()).to_owned(), replacement);
            }
        }
        // A map becomes the list of its values (an image as an array).
        5 => {
            if let Value::Object(map) = node {
                *node = Value::Array(std::mem::take(map).into_iter().map(|(_, v)| v).collect());
            }
        }
        // Change a DynamoDB attribute's type tag, keeping its value.
        6 => {
            if let Value::Object(map) = node {
                if map.len() == 1 {
                    let (_, v) = map.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
                    map.clear();
                    map.insert((*["S", "N", "M", "L", "BOOL", "NULL", "SS", "NS"].choose(rng).unwrap()).to_owned(), v);
                }
            }
        }
        // Wrap the node.
        _ => {
            let inner = node.take();
            *node = if rng.random_bool(0.5) {
                Value::Array(vec![inner])
            } else {
                Value::Object(Map::from_iter([("S".to_owned(), inner)]))
            };
        }
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut Pcg64Mcg) {
    for _ in 0..rng.random_range(1..=3) {
        let len = bytes.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                let b = *[b'"', b'{', b'}', b'[', b']', b',', b':', b'\\', 0u8, 0xff, 0xc3, b'e', b'-']
                    .choose(rng)
                    .unwrap();
                bytes.insert(i, b);
            }
            2 if len > 0 => bytes.truncate(rng.random_range(0..len)),
            3 if len > 1 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..len.min(a + 64));
                let segment = bytes[a..b].to_vec();
                let at = rng.random_range(0..=len);
                bytes.splice(at..at, segment);
            }
            4 => bytes.splice(0..0, [0xef, 0xbb, 0xbf]).for_each(drop),
            5 => bytes.push(b'\n'),
            _ if len > 0 => {
                let i = rng.random_range(0..len);
                bytes.remove(i);
            }
            _ => {}
        }
    }
}
