//! The error type of `brisk-frame`.

/// Errors found while building or computing a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be found, opened or read.
    #[error("{path}: {reason}")]
    File {
        /// The file (or pattern) concerned.
        path: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// A column name that the frame does not have.
    #[error("unknown column '{name}'{hint}")]
    UnknownColumn {
        /// The name as given.
        name: String,
        /// The closest existing names, or the list of columns.
        hint: String,
    },
    /// An operation that does not fit a column's type.
    #[error("column '{column}': {reason}")]
    Type {
        /// The column (or expression) concerned.
        column: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An option is out of range or inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// The operation needs a cargo feature of brisk-frame that this build left out
    /// (`parquet`, `compression`).
    #[error("{what} needs brisk-frame's `{feature}` feature")]
    MissingFeature {
        /// What was asked, e.g. `reading data.csv.gz`.
        what: String,
        /// The feature to turn on.
        feature: &'static str,
    },
    /// Computing failed.
    #[error(transparent)]
    Compute(#[from] brisk_scheduler::Error),
    /// The graph could not be built.
    #[error(transparent)]
    Graph(#[from] brisk_graph::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error for a file (or pattern) and what went wrong with it.
pub(crate) fn file_error(path: &std::path::Path, reason: impl std::fmt::Display) -> Error {
    Error::File { path: path.display().to_string(), reason: reason.to_string() }
}

/// The error for a column the schema lacks, naming the closest existing names.
pub(crate) fn unknown_column(name: &str, existing: &[&str]) -> Error {
    let mut scored: Vec<(usize, &str)> = existing
        .iter()
        .map(|e| (edit_distance(&name.to_lowercase(), &e.to_lowercase()), *e))
        .collect();
    scored.sort();
    let close: Vec<String> = scored
        .iter()
        .filter(|(d, e)| *d <= 1.max(e.len() / 3))
        .take(3)
        .map(|(_, e)| format!("'{e}'"))
        .collect();
    let hint = if close.is_empty() {
        format!("; the columns are {}", brisk_core::text::short_list(existing, 20))
    } else {
        format!("; did you mean {}?", close.join(" or "))
    };
    Error::UnknownColumn { name: name.to_string(), hint }
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_name_the_closest_columns() {
        let e = unknown_column("v4", &["id1", "v1", "v2", "v3"]).to_string();
        assert!(e.starts_with("unknown column 'v4'; did you mean 'v1'"), "{e}");
        let e = unknown_column("zzzzzz", &["id1", "v1"]).to_string();
        assert!(e.contains("the columns are 'id1', 'v1'"), "{e}");
    }
}
