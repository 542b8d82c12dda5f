//! The prediction writer formats every reason of every prediction into one
//! buffer it keeps: `describe_into` must allocate nothing of its own, with
//! no data, the precision check and singulars included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pulse_schemas::reasons::describe_into;
use pulse_schemas::{NoData, FEATURE_COUNT};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts the allocations of the thread that makes them.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

#[test]
fn describe_into_allocates_nothing_beyond_its_buffer() {
    let pairs = [
        (1.0, 4.0),
        (0.0, 1.0),
        (1.0, 0.0),
        (365.0, 3.0),
        (0.07, 0.4),
        (4.8, 4.84),
        (0.0501, 0.0504),
        (-0.01, 0.3),
        (30.0, 1.0 / 24.0),
        (19.2, 18.9),
    ];
    let flags = [NoData::NEITHER, NoData::NOW, NoData::WAS, NoData::BOTH];
    let mut out = String::with_capacity(4096);
    let before = ALLOCATIONS.with(Cell::get);
    for f in 0..FEATURE_COUNT {
        for &(now, was) in &pairs {
            for &no_data in &flags {
                out.clear();
                describe_into(f, now, was, no_data, &mut out);
                assert!(out.ends_with(')'), "{out}");
            }
        }
    }
    let after = ALLOCATIONS.with(Cell::get);
    assert_eq!(after - before, 0, "allocations in describe_into");
    // The count counts.
    let counted = std::hint::black_box(String::from("an allocation"));
    assert!(ALLOCATIONS.with(Cell::get) > after && !counted.is_empty());
}
