//! Helpers shared by the array tests.

/// Cuts an axis of length `n` into chunks of the sizes in `cuts` (the last one
/// trimmed, a remainder appended), as a random explicit chunking.
pub(crate) fn cut(n: usize, cuts: &[usize]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = n;
    for &c in cuts {
        if left == 0 {
            break;
        }
        sizes.push(c.min(left));
        left -= c.min(left);
    }
    if left > 0 || sizes.is_empty() {
        sizes.push(left);
    }
    sizes
}
