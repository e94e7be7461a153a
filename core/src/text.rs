//! Text for messages: sizes people read at a glance, and lists and values cut to
//! a length a terminal can show (a 10 MB line must not become a 10 MB error).

use std::fmt::Display;

/// A byte count as people read it: `512 B`, `1.5 KiB`, `64.0 MiB`, `2.0 GiB`.
///
/// ```
/// assert_eq!(brisk_core::text::bytes(919_558), "898.0 KiB");
/// assert_eq!(brisk_core::text::bytes(1000), "1000 B");
/// ```
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// At most `max` items, each quoted, then how many were left out:
/// `'a', 'b', 'c' and 97 more`.
///
/// ```
/// assert_eq!(brisk_core::text::short_list(["x", "y", "z"], 2), "'x', 'y' and 1 more");
/// ```
pub fn short_list<T: Display>(items: impl IntoIterator<Item = T>, max: usize) -> String {
    let mut shown = Vec::new();
    let mut more = 0usize;
    for item in items {
        if shown.len() < max {
            shown.push(format!("'{}'", short_value(&item.to_string(), 80)));
        } else {
            more += 1;
        }
    }
    let mut text = shown.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// A value cut to at most `max` characters, saying how much was left out.
///
/// ```
/// assert_eq!(brisk_core::text::short_value("abcdefgh", 3), "abc... (5 more characters)");
/// ```
pub fn short_value(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => {
            format!("{}... ({} more characters)", &text[..cut], text[cut..].chars().count())
        }
    }
}
