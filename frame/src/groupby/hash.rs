//! The hash-grouping kernel: rows of key columns to group ids, numbered part by
//! part so a state splits into contiguous parts. Its fixed hash (the same on
//! every run and machine) also splits rows for joins.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::row::{RowConverter, SortField};
use hashbrown::HashTable;

/// Group ids for the rows of some key columns: `ids[row]` (`u32::MAX` for a dropped
/// null key) and the first row of each group. Groups are numbered part by part
/// (a group's part is its key hash modulo the part count), in order of first
/// appearance within a part, so each part's groups are a contiguous range.
pub(super) struct Groups {
    pub(super) ids: Vec<u32>,
    pub(super) first_rows: Vec<u32>,
    /// The groups of part `p` are `part_ends[p - 1]..part_ends[p]`.
    pub(super) part_ends: Vec<usize>,
    /// Group ids by key hash; the key bytes of group g are `arena[ends[g-1]..ends[g]]`.
    table: HashTable<u32>,
    hashes: Vec<u64>,
    arena: Vec<u8>,
    ends: Vec<usize>,
}

/// The group id of a row whose null key is dropped.
pub(super) const DROPPED: u32 = u32::MAX;

/// The hash of a key's bytes: seeded, not random, so partitions and parts are the
/// same on every run and every machine.
pub(crate) fn fixed_hash(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(bytes)
}

/// Byte-slice equality without a call for the short keys group-bys usually have.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

impl Groups {
    fn new(rows: usize) -> Self {
        Groups {
            ids: vec![DROPPED; rows],
            first_rows: Vec::new(),
            part_ends: Vec::new(),
            table: HashTable::new(),
            hashes: Vec::new(),
            arena: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// Row `r`, with key `bytes` hashing to `h`, joins its group (a new one if
    /// unseen in the current part).
    #[inline]
    fn assign(&mut self, r: usize, bytes: &[u8], h: u64) {
        let Groups { table, arena, ends, hashes, first_rows, ids, .. } = self;
        let key = |g: u32| {
            let g = g as usize;
            &arena[if g == 0 { 0 } else { ends[g - 1] }..ends[g]]
        };
        let id = match table.find(h, |&g| same_bytes(key(g), bytes)) {
            Some(&g) => g,
            None => {
                let g = first_rows.len() as u32;
                arena.extend_from_slice(bytes);
                ends.push(arena.len());
                first_rows.push(r as u32);
                hashes.push(h);
                table.insert_unique(h, g, |&g| hashes[g as usize]);
                g
            }
        };
        ids[r] = id;
    }

    /// Numbers the groups part by part (stable within a part) and sets `part_ends`.
    fn renumber_by_part(&mut self, parts: usize) {
        let n = self.first_rows.len();
        if parts <= 1 {
            self.part_ends.push(n);
            return;
        }
        let part = |h: u64| (h % parts as u64) as usize;
        let mut ends = vec![0usize; parts];
        for &h in &self.hashes {
            ends[part(h)] += 1;
        }
        let mut next = Vec::with_capacity(parts);
        let mut total = 0;
        for e in &mut ends {
            next.push(total);
            total += *e;
            *e = total;
        }
        let mut new_id = vec![0u32; n];
        let mut first_rows = vec![0u32; n];
        let mut hashes = vec![0u64; n];
        for (g, (&h, &row)) in self.hashes.iter().zip(&self.first_rows).enumerate() {
            let to = next[part(h)];
            next[part(h)] += 1;
            new_id[g] = to as u32;
            first_rows[to] = row;
            hashes[to] = h;
        }
        for id in &mut self.ids {
            if *id != DROPPED {
                *id = new_id[*id as usize];
            }
        }
        self.first_rows = first_rows;
        self.hashes = hashes;
        // The arena is in the old numbering; nothing reads it after grouping.
        self.table.clear();
        self.arena.clear();
        self.ends.clear();
        self.part_ends = ends;
    }

    /// Groups the rows with a key (`key(r)` is `None` for a dropped row) into
    /// `parts` parts. With many groups, rows are bucketed by part first so each
    /// part's table stays small (and in cache); with few, one table serves all
    /// rows and the groups are renumbered by part at the end.
    fn build<'k>(&mut self, rows: usize, parts: usize, key: impl Fn(usize) -> Option<&'k [u8]>) {
        // Few groups among the first rows: one table.
        const PROBE: usize = 4096;
        let one_table = |g: &mut Groups, range: std::ops::Range<usize>| {
            for r in range {
                if let Some(bytes) = key(r) {
                    g.assign(r, bytes, fixed_hash(bytes));
                }
            }
        };
        let probe = rows.min(PROBE);
        // One part: room for many groups up front, or a high-cardinality key would
        // rehash the table again and again.
        let room = if parts <= 1 { rows.min(1 << 16) } else { probe };
        self.table.reserve(room, |_| 0);
        one_table(self, 0..probe);
        if parts <= 1 || self.first_rows.len() * 4 <= probe {
            one_table(self, probe..rows);
            self.renumber_by_part(parts);
            return;
        }
        // Many groups: start again, bucketed.
        self.ids[..probe].fill(DROPPED);
        self.first_rows.clear();
        self.hashes.clear();
        self.arena.clear();
        self.ends.clear();
        self.table.clear();
        // Each row's hash and part (`DROPPED` for a row without a key).
        let mut hashes = vec![0u64; rows];
        let mut part_of = vec![DROPPED; rows];
        let mut starts = vec![0usize; parts + 1];
        for r in 0..rows {
            if let Some(bytes) = key(r) {
                let h = fixed_hash(bytes);
                let p = (h % parts as u64) as usize;
                hashes[r] = h;
                part_of[r] = p as u32;
                starts[p + 1] += 1;
            }
        }
        // Rows by part, in row order within a part (a counting sort).
        for p in 0..parts {
            starts[p + 1] += starts[p];
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; starts[parts]];
        for (r, &p) in part_of.iter().enumerate() {
            if p != DROPPED {
                order[next[p as usize]] = r as u32;
                next[p as usize] += 1;
            }
        }
        let largest = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        self.table.reserve(largest.min(1 << 16), |_| 0);
        for p in 0..parts {
            self.table.clear();
            for &r in &order[starts[p]..starts[p + 1]] {
                let r = r as usize;
                let bytes = key(r).expect("kept rows have keys");
                self.assign(r, bytes, hashes[r]);
            }
            self.part_ends.push(self.first_rows.len());
        }
    }
}

/// Groups the rows of `keys` into `parts` parts by key hash.
pub(super) fn group(
    keys: &[ArrayRef],
    dropna: bool,
    parts: usize,
) -> std::result::Result<Groups, arrow::error::ArrowError> {
    let rows = keys.first().map_or(0, |k| k.len());
    let mut g = Groups::new(rows);
    // A null string is its own group, told from every string by a key no string
    // has (0xFF is not UTF-8).
    const NULL: &[u8] = &[0xFF];
    if let [k] = keys
        && let Some(s) = k.as_string_opt::<i32>()
    {
        // One string key: hash its bytes directly, no row encoding.
        g.build(rows, parts, |r| match s.is_null(r) {
            true if dropna => None,
            true => Some(NULL),
            false => Some(s.value(r).as_bytes()),
        });
        return Ok(g);
    }
    let converter =
        RowConverter::new(keys.iter().map(|k| SortField::new(k.data_type().clone())).collect())?;
    let encoded = converter.convert_columns(keys)?;
    g.build(rows, parts, |r| {
        if dropna && keys.iter().any(|k| k.is_null(r)) { None } else { Some(encoded.row(r).data()) }
    });
    Ok(g)
}
