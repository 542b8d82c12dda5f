//! Freed memory given back: a test binary of its own, so no other test's
//! allocations move the resident size it reads.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pulse_runtime::trim::{trim, Trimmer, SUPPORTED};

/// The tests run one at a time: a trimmer's trims would give back the
/// other test's freed pages before it looks.
static SERIAL: Mutex<()> = Mutex::new(());

/// This process's resident size, bytes (Linux).
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
    pages * 4096
}

#[test]
fn trimming_gives_back_the_pages_freed_between_live_allocations() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !SUPPORTED {
        return;
    }
    // 160 MiB in 8-KiB buffers, each followed by a small one that stays: once
    // the buffers are freed, their chunks cannot merge into the heap's top,
    // so only a trim can give their pages back.
    const N: usize = 20_000;
    let mut big = Vec::with_capacity(N);
    let mut kept = Vec::with_capacity(N);
    for i in 0..N {
        big.push(vec![(i % 251) as u8 + 1; 8192].into_boxed_slice());
        kept.push(Box::new([i as u64; 8]));
    }
    let before_free = resident();
    drop(std::hint::black_box(big));
    let freed = resident();
    assert!(trim(), "there were free pages to give back");
    let trimmed = resident();
    std::hint::black_box(&kept);
    assert!(
        freed > trimmed + 60 * 1024 * 1024,
        "resident {before_free} bytes with the buffers, {freed} after freeing them, {trimmed} after the trim"
    );
}

#[test]
fn the_trimmer_trims_every_interval_until_stopped() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(Trimmer::start(Duration::ZERO).is_none(), "a zero interval is off");
    let every = Duration::from_millis(5);
    if !SUPPORTED {
        assert!(Trimmer::start(every).is_none(), "nothing to trim: no thread");
        return;
    }
    let trimmer = Trimmer::start(every).expect("started where trimming is supported");
    let deadline = Instant::now() + Duration::from_secs(30);
    while trimmer.stats().calls < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = trimmer.stop();
    assert!(stats.calls >= 3, "{stats:?}");
    assert!(stats.longest <= stats.total, "{stats:?}");
}
