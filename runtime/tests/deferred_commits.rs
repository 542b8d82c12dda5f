//! A command's outputs appear together at its end, or not at all
//! (`pulse_runtime::io::defer_commits`). The state is the process's, so
//! this is one test in a test binary of its own.

use std::io::Write;

use pulse_runtime::io::{commit_deferred, committed, defer_commits, remove_partials, Output};

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut out = Output::create(path)?;
    out.write_all(text.as_bytes())?;
    out.finish()
}

fn hidden(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
        .count()
}

#[test]
fn outputs_wait_for_the_end_and_a_cancel_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a, "old a").unwrap();

    // Finished outputs wait: the paths hold what they held.
    defer_commits();
    write(&a, "new a").unwrap();
    write(&b, "new b").unwrap();
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
    assert!(!b.exists());
    // A scratch file is readable at once, whatever the outputs wait for.
    let scratch = dir.path().join("scratch.txt");
    let mut out = Output::scratch(&scratch).unwrap();
    out.write_all(b"read back").unwrap();
    out.finish().unwrap();
    assert_eq!(std::fs::read_to_string(&scratch).unwrap(), "read back");
    // The end puts them all in place.
    assert_eq!(commit_deferred().unwrap(), 2);
    assert!(committed());
    assert_eq!(
        (std::fs::read_to_string(&a).unwrap(), std::fs::read_to_string(&b).unwrap()),
        ("new a".into(), "new b".into())
    );
    assert_eq!(remove_partials(), 0, "a signal after the end removes nothing");
    assert!(committed(), "and the outputs stay in place");

    // A cancel (a signal, an error) throws away what waits, and what is
    // finished after it; the end then fails.
    defer_commits();
    write(&a, "newer a").unwrap();
    assert_eq!(remove_partials(), 1);
    let late = write(&b, "newer b").unwrap_err();
    assert!(late.to_string().contains("was not kept"), "{late}");
    assert!(commit_deferred().unwrap_err().to_string().contains("stopped"));
    assert!(!committed());
    assert_eq!(
        (std::fs::read_to_string(&a).unwrap(), std::fs::read_to_string(&b).unwrap()),
        ("new a".into(), "new b".into())
    );
    assert_eq!(hidden(dir.path()), 0, "no temporary file left");
}
