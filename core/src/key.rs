//! Task identity.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A task's identity: a name plus a chunk index, like Dask's `("mean-chunk-9f3a", 2, 7)`.
///
/// Keys of collection ops are deterministic: [`Key::token`] derives the name from a
/// hash of the op's parameters and its input keys, so two collections built the same
/// way get equal keys and a merged graph computes their shared work once.
///
/// Cloning a key is cheap: the name is shared.
///
/// ```
/// use brisk_core::Key;
/// let k = Key::new("mean-chunk-9f3a", [2, 7]);
/// assert_eq!(k.to_string(), "('mean-chunk-9f3a', 2, 7)");
/// assert_eq!(k.name(), "mean-chunk-9f3a");
/// assert_eq!(k.index(), &[2, 7]);
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    name: Arc<str>,
    index: Box<[u32]>,
}

impl Key {
    /// A key from a name and a chunk index (empty for a single task).
    pub fn new(name: impl Into<Arc<str>>, index: impl Into<Box<[u32]>>) -> Self {
        Self { name: name.into(), index: index.into() }
    }

    /// A key with no chunk index.
    pub fn named(name: impl Into<Arc<str>>) -> Self {
        Self::new(name, Box::<[u32]>::default())
    }

    /// The same name with another chunk index; the name is shared, not copied.
    pub fn with_index(&self, index: impl Into<Box<[u32]>>) -> Self {
        Self { name: Arc::clone(&self.name), index: index.into() }
    }

    /// A deterministic name: `prefix-` followed by 16 hex digits of a hash of `parts`.
    ///
    /// Use it with the op's parameters and its input keys so that equal
    /// computations get equal keys. The hash is stable within one build of the
    /// program (processes running the same binary agree), not across Rust versions.
    ///
    /// ```
    /// use brisk_core::Key;
    /// let x = Key::named("x");
    /// let a = Key::token("add", &(&x, 1_i64));
    /// let b = Key::token("add", &(&x, 1_i64));
    /// assert_eq!(a, b);
    /// assert_ne!(a, Key::token("add", &(&x, 2_i64)));
    /// assert!(a.name().starts_with("add-"));
    /// ```
    pub fn token(prefix: &str, parts: &impl Hash) -> Self {
        Self::named(format!("{prefix}-{:016x}", stable_hash(parts)))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key's chunk index.
    pub fn index(&self) -> &[u32] {
        &self.index
    }
}

/// A hash that is the same for equal inputs in every run of one build.
pub(crate) fn stable_hash(value: &impl Hash) -> u64 {
    // DefaultHasher::new() uses fixed SipHash keys, unlike RandomState.
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index.is_empty() {
            return write!(f, "'{}'", self.name);
        }
        write!(f, "('{}'", self.name)?;
        for i in self.index.iter() {
            write!(f, ", {i}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&str> for Key {
    fn from(name: &str) -> Self {
        Key::named(name)
    }
}

impl From<String> for Key {
    fn from(name: String) -> Self {
        Key::named(name)
    }
}

impl<const N: usize> From<(&str, [u32; N])> for Key {
    fn from((name, index): (&str, [u32; N])) -> Self {
        Key::new(name, index)
    }
}

/// A key crosses to another process as the pair `(name, index)`, as Dask's tuple
/// keys do.
impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&*self.name, &*self.index).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (name, index) = <(String, Vec<u32>)>::deserialize(d)?;
        Ok(Key::new(name, index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cross_processes_as_name_and_index() {
        for key in [Key::named("sum"), Key::new("rand-9f3a", [0, 3]), Key::new("", [u32::MAX])] {
            let bytes = rmp_serde::to_vec(&key).unwrap();
            assert_eq!(rmp_serde::from_slice::<Key>(&bytes).unwrap(), key);
            // The same bytes as the pair: any reader of the format can read one.
            let pair: (String, Vec<u32>) = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!((pair.0.as_str(), pair.1.as_slice()), (key.name(), key.index()));
        }
        assert!(rmp_serde::from_slice::<Key>(&rmp_serde::to_vec(&("x", "y")).unwrap()).is_err());
    }

    #[test]
    fn keys_with_same_name_and_index_are_equal_and_others_are_not() {
        let a = Key::new("x", [1, 2]);
        assert_eq!(a, Key::from(("x", [1, 2])));
        assert_ne!(a, a.with_index([2, 1]));
        assert_ne!(a, Key::new("y", [1, 2]));
        assert_ne!(Key::named("x"), Key::new("x", [0]));
    }

    #[test]
    fn display_reads_like_dask_keys() {
        assert_eq!(Key::named("sum").to_string(), "'sum'");
        assert_eq!(Key::new("rand", [0, 3]).to_string(), "('rand', 0, 3)");
    }
}
