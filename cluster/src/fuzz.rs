//! Test inputs: seeded pseudo-random byte strings for decoders, which
//! must refuse them without panicking.

/// `count` byte strings of lengths `0..max_len` cycling, from an xorshift
/// generator seeded with `seed` (the same inputs on every run).
pub(crate) fn random_bytes(seed: u64, count: usize, max_len: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut x = seed.max(1);
    (0..count).map(move |n| {
        (0..n % max_len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    })
}
