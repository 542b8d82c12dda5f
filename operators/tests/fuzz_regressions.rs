//! The fuzzer's corpus and every input it ever caught
//! (`scripts/fuzz/{corpus,crashes}`, see `operators/examples/fuzz_decoder.rs`)
//! through the decoder and the engine: no panic, every feature a number.

use std::path::Path;

use pulse_operators::{Engine, EngineConfig};
use pulse_schemas::capture::decode_line;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|x| x == "jsonl") {
            for (i, line) in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
                out.push((format!("{name}:{}", i + 1), line.to_vec()));
            }
        } else {
            out.push((name, bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn the_corpus_and_every_kept_crash_decode_and_apply_without_panic_to_finite_features() {
    let corpus = inputs("scripts/fuzz/corpus");
    assert!(corpus.len() >= 100, "the corpus is there: {} lines", corpus.len());
    let crashes = inputs("scripts/fuzz/crashes");
    let engine = Engine::new(EngineConfig::default());
    let mut out = Vec::new();
    let mut valid = 0;
    for (name, input) in corpus.iter().chain(&crashes) {
        let Ok(record) = decode_line(input) else { continue };
        valid += 1;
        if let Some(created) = record.created_ms {
            engine.advance_to(created.floor() as i64, &mut out);
        }
        engine.apply(&record, &mut out);
        for e in out.drain(..) {
            assert!(e.features.iter().all(|f| f.is_finite()), "{name}: {:?}", e.features);
        }
    }
    assert!(valid > 0, "some corpus lines are valid records");
}
