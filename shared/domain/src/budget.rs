//! Per-thread allocation accounting, so a template render can be held to a memory budget.
//!
//! A render runs synchronously on one thread, inside minijinja's VM. Fuel bounds how many
//! instructions it executes, but not what one instruction costs: `'x' * n`, `replace` or `~` in a
//! loop can each allocate megabytes. [`CountingAllocator`] wraps the system allocator and adds every
//! allocation's size to a thread-local counter; the template layer reads [`allocated_bytes`] before
//! a render and at every point where its own code runs during the render (the output writer, the
//! formatter, idflow's functions and filters), and stops the render once the difference passes the
//! budget.
//!
//! Counting is cumulative (bytes allocated, not bytes live), which also bounds the CPU spent copying
//! memory. No allocator crate does per-thread byte counts with a `const` thread-local, which an
//! allocator needs (it must not allocate itself), so this is written by hand; it is a handful of
//! lines over [`std::alloc::System`].
//!
//! Every idflow binary installs it (`#[global_allocator]`); a program embedding the library without
//! it still gets fuel and output-size limits, and [`is_counting`] tells the difference.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Bytes allocated by this thread since it started. `const` and `Drop`-free, so reading it never
    /// allocates (an allocator must not recurse into itself).
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

/// Set once the counting allocator has seen an allocation.
static COUNTING: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting bytes allocated per thread. Install it in a binary with
/// `#[global_allocator] static ALLOC: shared::budget::CountingAllocator = shared::budget::CountingAllocator;`.
pub struct CountingAllocator;

fn note(bytes: usize) {
    // `try_with`: during thread teardown the slot may be gone; the count then no longer matters.
    let _ = ALLOCATED.try_with(|count| count.set(count.get().wrapping_add(bytes as u64)));
}

/// Another allocator (`A`), counting bytes allocated per thread as [`CountingAllocator`] does over
/// the system allocator. `idflow serve` installs it over mimalloc, whose thread-local heaps cost a
/// fraction of glibc's arenas when many threads allocate and free (measured under `bench/load.sh`).
pub struct CountingOver<A>(pub A);

// SAFETY: every method forwards to `A` with the same arguments; counting touches only a
// thread-local `Cell<u64>`, which neither allocates nor panics.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingOver<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size.saturating_sub(layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

// SAFETY: every method forwards to `CountingOver(System)` with the same arguments.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        unsafe { CountingOver(System).alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        unsafe { CountingOver(System).alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        unsafe { CountingOver(System).realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { CountingOver(System).dealloc(ptr, layout) }
    }
}

/// Bytes this thread has allocated so far (0 forever when [`CountingAllocator`] is not installed).
pub fn allocated_bytes() -> u64 {
    let bytes = ALLOCATED.try_with(Cell::get).unwrap_or(0);
    if bytes > 0 {
        COUNTING.store(true, Ordering::Relaxed);
    }
    bytes
}

/// Whether allocations are being counted in this process.
pub fn is_counting() -> bool {
    COUNTING.load(Ordering::Relaxed) || allocated_bytes() > 0
}

/// Parses a byte size as flow files write it: `10MiB`, `100 MB`, `512KiB`, `2GiB`, or a plain number
/// of bytes. Binary (`KiB`, `MiB`, `GiB`) and decimal (`KB`, `MB`, `GB`) units, case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("expected a size such as `10MiB`, got `{text}`"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}`; use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is not a usable size"));
    }
    Ok(bytes as u64)
}

/// A size for messages: `10 MiB`, `512 KiB`, `300 B`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if value.fract() == 0.0 {
                format!("{value:.0} {unit}")
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// An estimate of the JSON text size of a value, stopping early once it passes `limit`.
pub fn json_size(value: &serde_json::Value, limit: u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        total += match value {
            serde_json::Value::Null => 4,
            serde_json::Value::Bool(_) => 5,
            serde_json::Value::Number(_) => 8,
            serde_json::Value::String(text) => text.len() as u64 + 2,
            serde_json::Value::Array(items) => {
                stack.extend(items.iter());
                items.len() as u64 + 2
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    total += key.len() as u64 + 4;
                    stack.push(item);
                }
                2
            }
        };
        if total > limit {
            return total;
        }
    }
    total
}

/// The deepest run input accepted. A stored run is decoded with serde_json's recursion limit (128
/// levels, counting the record around the input); an input near that limit was written but could
/// never be read again, so one request with a 127-level JSON body broke the run list for everyone
/// (found by fuzzing). 64 leaves room for any wrapping and for every flow seen.
pub const MAX_INPUT_DEPTH: usize = 64;

/// How deeply a value nests lists and objects (a scalar is 0, `[]` and `{}` are 1). Iterative, so
/// any value can be measured.
pub fn json_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => {
                deepest = deepest.max(depth);
                continue;
            }
        };
        deepest = deepest.max(depth + 1);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("100 MB"), Ok(100_000_000));
        assert_eq!(parse_size("1.5 KiB"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(
            parse_size("10 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("0").is_err());
        assert!(parse_size("MiB").is_err());
        assert_eq!(format_size(10 << 20), "10 MiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(12), "12 B");
    }

    #[test]
    fn the_test_binary_counts_this_threads_allocations() {
        let before = allocated_bytes();
        let big = vec![0u8; 1 << 20];
        std::hint::black_box(&big);
        assert!(allocated_bytes() - before >= 1 << 20);
        assert!(is_counting());
    }

    #[test]
    fn json_depth_counts_nested_lists_and_objects() {
        assert_eq!(json_depth(&serde_json::json!(1)), 0);
        assert_eq!(json_depth(&serde_json::json!([])), 1);
        assert_eq!(
            json_depth(&serde_json::json!({ "a": [1, { "b": [] }], "c": 2 })),
            4
        );
    }

    #[test]
    fn json_size_stops_early_past_the_limit() {
        let value = serde_json::json!({ "a": "x".repeat(1000), "b": [1, 2, 3] });
        let full = json_size(&value, u64::MAX);
        assert!((1000..1100).contains(&full), "{full}");
        assert!(json_size(&value, 10) > 10);
    }
}
