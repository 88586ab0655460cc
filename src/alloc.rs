//! The process allocator: mimalloc instead of glibc's malloc.
//!
//! glibc's allocator slows down sharply once long-lived rows (outputs held
//! for exactly-once delivery, window contents) sit between per-event
//! garbage: with `qos: 2`, `malloc` rose from 9% to 24% of W1's CPU time.
//! With mimalloc W1 runs faster at `qos: 0` and `qos: 2` costs a few
//! percent over it (see benches/README.md). Transparent huge pages are off
//! (`no_thp`): with them peak RSS of W1 was 47 MiB instead of 37 MiB.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
