//! [`Ranked`]: an entry of a priority queue of work, highest priority first,
//! then oldest first.

/// `item`, queued with a `priority` and its place `seq` in arrival order: in a
/// `BinaryHeap`, the highest priority comes out first, then the lowest `seq`
/// (the item itself is not compared).
pub struct Ranked<T> {
    /// Higher comes out first.
    pub priority: i64,
    /// Arrival order, among equal priorities.
    pub seq: u64,
    /// What is queued.
    pub item: T,
}

impl<T> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}

impl<T> Eq for Ranked<T> {}

impl<T> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority.cmp(&other.priority).then(other.seq.cmp(&self.seq))
    }
}
