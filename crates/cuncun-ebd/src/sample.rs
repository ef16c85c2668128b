//! Random valid values of every EBD type, from a seed: for round-trip property tests, the fuzz
//! test's seed corpus and benchmarks. Every value produced is one the parser must accept.

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

/// A random valid value.
pub trait Sample {
    fn sample(g: &mut Gen) -> Self;
}

/// Characters free text is drawn from: ASCII, markup characters, whitespace incl. CR, Chinese,
/// and a character outside the BMP.
const PALETTE: &[char] = &[
    'a', 'Z', '0', '9', ' ', '&', '<', '>', '"', '\'', ';', '#', '\n', '\r', '\t', '暴', '雨', '红', '色', '预',
    '警', '县', '。', '，', '😀', '/', '=', ']', '-', '_',
];

impl Sample for String {
    fn sample(g: &mut Gen) -> Self {
        let n = g.below(24) as usize;
        (0..n).map(|_| *g.pick(PALETTE)).collect()
    }
}

impl Sample for u64 {
    fn sample(g: &mut Gen) -> Self {
        match g.below(3) {
            0 => g.below(10),
            1 => g.below(1_000_000),
            _ => g.next_u64(),
        }
    }
}

impl<T: Sample> Sample for Option<T> {
    fn sample(g: &mut Gen) -> Self {
        g.chance(60).then(|| T::sample(g))
    }
}

impl<T: Sample> Sample for Vec<T> {
    fn sample(g: &mut Gen) -> Self {
        let n = g.below(4);
        (0..n).map(|_| T::sample(g)).collect()
    }
}
