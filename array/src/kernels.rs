//! Per-chunk kernels: the counter-based generator and pairwise summation.

/// SplitMix64's output function: a bijective mixer of 64-bit words.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The uniform [0, 1) value of element `index` of the stream keyed by `seed`: the
/// `index`-th output of SplitMix64 started at the mixed seed. A pure function of
/// (seed, index), so every chunking of an array draws the same numbers.
pub(crate) fn uniform(seed_key: u64, index: u64) -> f64 {
    (bits(seed_key, index) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The 64 random bits of element `index` of the stream keyed by `seed_key`.
pub(crate) fn bits(seed_key: u64, index: u64) -> u64 {
    mix(seed_key.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// An integer in `[low, low + span)` from 64 random bits (Lemire's multiply-shift:
/// no division, bias below 2⁻⁶⁴·span).
pub(crate) fn below(bits: u64, low: i64, span: u64) -> i64 {
    low.wrapping_add(((u128::from(bits) * u128::from(span)) >> 64) as i64)
}

/// The generator key of a user seed.
pub(crate) fn seed_key(seed: u64) -> u64 {
    mix(seed ^ 0x6a09_e667_f3bc_c908)
}

/// Below this many elements, sum with eight accumulators in one pass (numpy's
/// `PW_BLOCKSIZE`).
const BLOCK: usize = 128;

/// Pairwise summation, as numpy does it: error grows with log(n) rather than n, and
/// the result depends only on the values and their order.
pub(crate) fn pairwise_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        return x.iter().fold(0.0, |acc, v| acc + v);
    }
    if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&x[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for k in 0..8 {
                r[k] += x[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &x[i..] {
            res += v;
        }
        return res;
    }
    let half = (n / 2) & !7;
    pairwise_sum(&x[..half]) + pairwise_sum(&x[half..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_is_exact_on_integers_and_close_on_floats() {
        let x: Vec<f64> = (0..100_003).map(f64::from).collect();
        assert_eq!(pairwise_sum(&x), 100_002.0 * 100_003.0 / 2.0);
        let tenth = vec![0.1; 1_000_000];
        let naive: f64 = tenth.iter().sum();
        let pw = pairwise_sum(&tenth);
        assert!((pw - 100_000.0).abs() < (naive - 100_000.0).abs());
        assert!((pw - 100_000.0).abs() < 1e-8, "{pw}");
    }

    #[test]
    fn uniform_values_are_in_range_and_look_uniform() {
        let key = seed_key(42);
        let n = 1_000_000;
        let xs: Vec<f64> = (0..n).map(|i| uniform(key, i)).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = pairwise_sum(&xs) / n as f64;
        assert!((mean - 0.5).abs() < 3.0 * (1.0 / 12.0f64).sqrt() / (n as f64).sqrt(), "{mean}");
        let mut bins = [0usize; 10];
        xs.iter().for_each(|&x| bins[(x * 10.0) as usize] += 1);
        assert!(bins.iter().all(|&b| (b as f64 - 100_000.0).abs() < 1_500.0), "{bins:?}");
        assert_ne!(uniform(seed_key(1), 0), uniform(seed_key(2), 0));
    }
}
