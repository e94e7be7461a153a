//! The fixed combine tree every reduction uses (arrays, group-bys, describe).

use brisk_core::{Key, Op};

use crate::Task;

/// Reductions combine this many partial results per tree node unless told otherwise
/// (Dask's `split_every` default).
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// Combines `level` in a fixed tree, `split_every` keys per node, until at most
/// `limit` keys are left; pushes the combine tasks onto `tasks` and returns the last
/// level (`level` itself when it is already small enough).
///
/// The combine tasks of depth `d` are keyed `{prefix}-{d}`, indexed by `index` and
/// the node's position in its level; their op is `combine(d)`. The tree depends only
/// on the order of `level`, never on which partial finishes first, which is what
/// makes reductions bit-identical on every scheduler and thread count.
///
/// ```
/// use brisk_core::{Key, Op, Value};
/// use brisk_graph::combine_tree;
///
/// let partials: Vec<Key> = (0..20u32).map(|i| Key::new("sum-chunk", [i])).collect();
/// let mut tasks = Vec::new();
/// let top = combine_tree(partials, 8, 1, "sum-combine", &[], |_| Op::Const(Value::from(0_i64)), &mut tasks);
/// // 20 partials -> 3 nodes -> 1 node
/// assert_eq!((tasks.len(), top.len()), (4, 1));
/// assert_eq!(top[0], Key::new("sum-combine-1", [0]));
/// ```
pub fn combine_tree(
    mut level: Vec<Key>,
    split_every: usize,
    limit: usize,
    prefix: &str,
    index: &[u32],
    mut combine: impl FnMut(u32) -> Op,
    tasks: &mut Vec<Task>,
) -> Vec<Key> {
    debug_assert!(split_every >= 2, "a combine tree needs split_every >= 2");
    let mut depth = 0u32;
    while level.len() > limit.max(1) {
        let base = Key::named(format!("{prefix}-{depth}"));
        let op = combine(depth);
        level = level
            .chunks(split_every)
            .enumerate()
            .map(|(i, group)| {
                let key =
                    base.with_index(index.iter().copied().chain([i as u32]).collect::<Vec<_>>());
                tasks.push(Task::new(key.clone(), op.clone(), group.to_vec()));
                key
            })
            .collect();
        depth += 1;
    }
    level
}

/// The name of a collection's layer: `prefix` and a hash of everything that decides
/// its tasks (Dask's `tokenize`), so collections built the same way share keys.
///
/// ```
/// let a = brisk_graph::token("sum", &("x", 8usize));
/// assert_eq!(a, brisk_graph::token("sum", &("x", 8usize)));
/// assert_ne!(a, brisk_graph::token("sum", &("x", 4usize)));
/// assert!(a.starts_with("sum-"));
/// ```
pub fn token(prefix: &str, params: &impl std::hash::Hash) -> String {
    Key::token(prefix, params).name().to_string()
}
