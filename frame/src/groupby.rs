//! Group-by aggregations: a partial state per partition, hash-split into parts,
//! each part combined in a fixed tree (`split_every`) and finished once; the
//! result is sorted by key.
//!
//! A state is a record batch: the key columns and, per aggregation, its state
//! columns (a sum; a sum and a count; count, mean and M2 for var/std; ...).
//! Partial and combine share one accumulator: combine just feeds it states
//! instead of values.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, Float64Array, Int64Array, MutableArrayData, RecordBatch,
    UInt32Array, make_array,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{DEFAULT_SPLIT_EVERY, Layer, Task, combine_tree, token};
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use crate::batches::{arrow_err, batch_of, concat_all, first_batch};
use crate::frame::Frame;
use crate::table::sort_batch;
use crate::{Error, Result};

/// Parts the groups are hash-split into, at most: enough that a million groups
/// never pass through one task, few enough that small results stay cheap.
const MAX_SPLIT_OUT: usize = 16;

/// An aggregation of one column per group (pandas' semantics: nulls skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Agg {
    /// Sum (0 for a group of nulls); Int64 for integer columns, else Float64.
    Sum,
    /// Arithmetic mean (null for a group of nulls).
    Mean,
    /// Count of non-null values.
    Count,
    /// Count of rows, nulls included.
    Size,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Sample standard deviation (ddof = 1).
    Std,
    /// Sample variance (ddof = 1), combined with Chan's parallel update.
    Var,
    /// First non-null value, in row order.
    First,
    /// Last non-null value, in row order.
    Last,
    /// Number of distinct non-null values.
    Nunique,
}

impl Agg {
    /// The name used in output columns and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Sum => "sum",
            Agg::Mean => "mean",
            Agg::Count => "count",
            Agg::Size => "size",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Std => "std",
            Agg::Var => "var",
            Agg::First => "first",
            Agg::Last => "last",
            Agg::Nunique => "nunique",
        }
    }

    /// The aggregation of this name.
    pub fn parse(name: &str) -> Option<Agg> {
        [
            Agg::Sum,
            Agg::Mean,
            Agg::Count,
            Agg::Size,
            Agg::Min,
            Agg::Max,
            Agg::Std,
            Agg::Var,
            Agg::First,
            Agg::Last,
            Agg::Nunique,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }

    fn numeric_only(self) -> bool {
        matches!(self, Agg::Sum | Agg::Mean | Agg::Std | Agg::Var)
    }
}

/// One output column: `agg` of `column`, named `out`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Spec {
    column: String,
    agg: Agg,
    out: String,
    /// The input column's type (as Arrow prints it).
    input: String,
}

impl Spec {
    fn input_type(&self) -> DataType {
        self.input.parse().unwrap_or(DataType::Utf8)
    }

    /// Whether sums, minima and maxima stay in Int64.
    fn integer(&self) -> bool {
        let t = self.input_type();
        t.is_integer() || t == DataType::Boolean
    }

    /// The type min/max/first/last states and results keep.
    fn value_type(&self) -> DataType {
        let t = self.input_type();
        match self.agg {
            Agg::Min | Agg::Max if t.is_integer() || t == DataType::Boolean => DataType::Int64,
            Agg::Min | Agg::Max if t.is_floating() => DataType::Float64,
            _ => t,
        }
    }

    fn state_fields(&self, i: usize) -> Vec<Field> {
        let f = |suffix: &str, t: DataType| Field::new(format!("__{i}_{suffix}"), t, true);
        match self.agg {
            Agg::Sum if self.integer() => vec![f("sum", DataType::Int64)],
            Agg::Sum => vec![f("sum", DataType::Float64)],
            Agg::Mean => vec![f("sum", DataType::Float64), f("n", DataType::Int64)],
            Agg::Count | Agg::Size => vec![f("n", DataType::Int64)],
            Agg::Var | Agg::Std => {
                vec![
                    f("n", DataType::Int64),
                    f("mean", DataType::Float64),
                    f("m2", DataType::Float64),
                ]
            }
            Agg::Min | Agg::Max | Agg::First | Agg::Last => vec![f("v", self.value_type())],
            Agg::Nunique => {
                let item = Field::new("item", self.input_type(), true);
                vec![f("set", DataType::List(Arc::new(item)))]
            }
        }
    }

    fn output_type(&self) -> DataType {
        match self.agg {
            Agg::Sum if self.integer() => DataType::Int64,
            Agg::Count | Agg::Size => DataType::Int64,
            Agg::Sum | Agg::Mean | Agg::Var | Agg::Std => DataType::Float64,
            Agg::Min | Agg::Max | Agg::First | Agg::Last => self.value_type(),
            Agg::Nunique => DataType::Int64,
        }
    }
}

/// A lazy group-by of a frame on key columns; aggregate it with [`GroupBy::agg`] or
/// a shorthand ([`GroupBy::mean`], ...).
#[derive(Clone, Debug)]
pub struct GroupBy {
    frame: Frame,
    keys: Vec<String>,
    dropna: bool,
    split_every: usize,
    split_out: Option<usize>,
}

impl Frame {
    /// Groups by these key columns (at least one).
    pub fn groupby<S: AsRef<str>>(&self, keys: impl IntoIterator<Item = S>) -> Result<GroupBy> {
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_string()).collect();
        if keys.is_empty() {
            return Err(Error::Invalid("groupby needs at least one key column".into()));
        }
        for k in &keys {
            self.check_column(k)?;
        }
        Ok(GroupBy {
            frame: self.clone(),
            keys,
            dropna: true,
            split_every: DEFAULT_SPLIT_EVERY,
            split_out: None,
        })
    }
}

/// The constant key of a whole-frame aggregation.
const WHOLE: &str = "__brisk_whole";

impl Frame {
    /// Aggregates the whole frame to one row, as pandas' `df.agg`: `(column, agg)`
    /// pairs named `column_agg` as in [`GroupBy::agg`].
    pub fn agg<S: AsRef<str>>(&self, specs: impl IntoIterator<Item = (S, Agg)>) -> Result<Frame> {
        // One group for every row: a constant key, dropped from the result.
        let specs: Vec<(String, Agg)> =
            specs.into_iter().map(|(c, a)| (c.as_ref().to_string(), a)).collect();
        // Columns checked here, so an error lists this frame's columns only.
        let names = self.columns();
        for (c, agg) in &specs {
            let size_of_rows = c.is_empty() && *agg == Agg::Size;
            if !size_of_rows && !names.contains(&c.as_str()) {
                return Err(crate::error::unknown_column(c, &names));
            }
        }
        self.whole()?.agg(specs)?.drop([WHOLE])
    }

    /// `agg` over every numeric column to one row, columns keeping their names, as
    /// pandas' `df.mean()`.
    pub fn agg_numeric(&self, agg: Agg) -> Result<Frame> {
        self.whole()?.agg_numeric(agg)?.drop([WHOLE])
    }

    /// One group holding every row: a constant key, dropped from the results.
    fn whole(&self) -> Result<GroupBy> {
        self.with_column(WHOLE, crate::expr::lit(true))?.groupby([WHOLE])
    }
}

impl GroupBy {
    /// Whether rows with a null key are dropped (default true, as pandas).
    pub fn dropna(mut self, yes: bool) -> Self {
        self.dropna = yes;
        self
    }

    /// Partial states combined per tree node (at least 2).
    pub fn split_every(mut self, n: usize) -> Self {
        self.split_every = n.max(2);
        self
    }

    /// Parts the groups are hash-split into (default: one per partition, at most 16).
    pub fn split_out(mut self, n: usize) -> Self {
        self.split_out = Some(n.max(1));
        self
    }

    /// Aggregates `(column, agg)` pairs; each output column is named `column_agg`
    /// ([`Agg::Size`] counts rows whatever the column; with an empty column name it
    /// is named `size`).
    pub fn agg<S: AsRef<str>>(&self, specs: impl IntoIterator<Item = (S, Agg)>) -> Result<Frame> {
        let specs = specs
            .into_iter()
            .map(|(c, a)| {
                let c = c.as_ref();
                let out = if a == Agg::Size && c.is_empty() {
                    "size".to_string()
                } else {
                    format!("{c}_{}", a.name())
                };
                self.spec(c, a, out)
            })
            .collect::<Result<Vec<_>>>()?;
        self.build(specs)
    }

    fn spec(&self, column: &str, agg: Agg, out: String) -> Result<Spec> {
        let schema = self.frame.schema();
        let input = if agg == Agg::Size && column.is_empty() {
            DataType::Int64
        } else {
            self.frame.check_column(column)?;
            schema.field_with_name(column).expect("checked").data_type().clone()
        };
        if agg.numeric_only() && !(input.is_numeric() || input == DataType::Boolean) {
            return Err(Error::Type {
                column: column.to_string(),
                reason: format!("{} needs a numeric column, not {input}", agg.name()),
            });
        }
        if matches!(agg, Agg::Min | Agg::Max) && !(input.is_numeric() || input == DataType::Boolean)
        {
            return Err(Error::Type {
                column: column.to_string(),
                reason: format!("{} supports numeric columns so far, not {input}", agg.name()),
            });
        }
        Ok(Spec { column: column.to_string(), agg, out, input: input.to_string() })
    }

    /// `agg` over every non-key numeric column, output columns keeping their names
    /// (pandas' `df.groupby(k).mean()` family; [`mean`](Self::mean) is
    /// `agg_numeric(Agg::Mean)`).
    pub fn agg_numeric(&self, agg: Agg) -> Result<Frame> {
        let specs = self
            .frame
            .schema()
            .fields()
            .iter()
            .filter(|f| !self.keys.contains(f.name()) && f.data_type().is_numeric())
            .map(|f| self.spec(f.name(), agg, f.name().clone()))
            .collect::<Result<Vec<_>>>()?;
        if specs.is_empty() {
            return Err(Error::Invalid(format!(
                "{} needs a numeric column besides the keys {:?}",
                agg.name(),
                self.keys
            )));
        }
        self.build(specs)
    }

    /// The sum of every non-key numeric column.
    pub fn sum(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Sum)
    }

    /// The mean of every non-key numeric column.
    pub fn mean(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Mean)
    }

    /// The minimum of every non-key numeric column.
    pub fn min(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Min)
    }

    /// The maximum of every non-key numeric column.
    pub fn max(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Max)
    }

    /// The non-null count of every non-key numeric column.
    pub fn count(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Count)
    }

    /// The sample standard deviation of every non-key numeric column.
    pub fn std(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Std)
    }

    /// The sample variance of every non-key numeric column.
    pub fn var(&self) -> Result<Frame> {
        self.agg_numeric(Agg::Var)
    }

    /// The number of rows per group, as a column `size`.
    pub fn size(&self) -> Result<Frame> {
        self.build(vec![self.spec("", Agg::Size, "size".into())?])
    }

    fn build(&self, specs: Vec<Spec>) -> Result<Frame> {
        // Only the key and aggregated columns are read.
        let mut needed = self.keys.clone();
        for s in &specs {
            if !s.column.is_empty() && !needed.contains(&s.column) {
                needed.push(s.column.clone());
            }
        }
        let frame = self.frame.projected(&needed)?;
        let schema = frame.schema();
        let mut fields: Vec<Field> =
            self.keys.iter().map(|k| schema.field_with_name(k).expect("checked").clone()).collect();
        for s in &specs {
            if fields.iter().any(|f| f.name() == &s.out) {
                return Err(Error::Invalid(format!("output column '{}' is given twice", s.out)));
            }
            fields.push(Field::new(&s.out, s.output_type(), true));
        }
        let out_schema: SchemaRef = Arc::new(Schema::new(fields));
        let n = frame.npartitions();
        let parts = self.split_out.unwrap_or(n.clamp(1, MAX_SPLIT_OUT));
        let plan = Plan { keys: self.keys.clone(), specs, dropna: self.dropna, parts };
        let name = token("groupby", &(frame.layer().name(), format!("{plan:?}"), self.split_every));
        let partial_base = Key::named(format!("{name}-partial"));
        let partials: Vec<Task> = frame
            .partition_keys()
            .enumerate()
            .map(|(i, k)| {
                Task::new(
                    partial_base.with_index([i as u32]),
                    Op::data(Partial { plan: plan.clone() }),
                    [k.clone()],
                )
            })
            .collect();
        let mut inner = Vec::new();
        let mut outputs = Vec::new();
        let partial_keys: Vec<Key> = partials.iter().map(|t| t.key.clone()).collect();
        // Each part of a split state is its own result, so a spilled part is read
        // back once, by its own combine, not once per part.
        let pieces =
            (parts > 1).then(|| crate::batches::items(&name, &partial_keys, parts, &mut inner));
        for part in 0..parts {
            let (level, pick) = match &pieces {
                Some(pieces) => (pieces[part].clone(), None),
                None => (partial_keys.clone(), Some(part as u32)),
            };
            // Only the first level reads part `pick` out of split partials; what it
            // gives is one part already, and so is everything after it.
            let mut combined = false;
            let level = combine_tree(
                level,
                self.split_every,
                self.split_every,
                &format!("{name}-combine"),
                &[part as u32],
                |depth| {
                    combined = true;
                    let part = if depth == 0 { pick } else { None };
                    Op::data(Combine { plan: plan.clone(), part })
                },
                &mut inner,
            );
            let pick = if combined { None } else { pick };
            let op = Op::data(Finish { plan: plan.clone(), part: pick });
            outputs.push(Task::new(Key::new(name.as_str(), [part as u32]), op, level));
        }
        inner.extend(partials);
        let middle = Layer::new(format!("{name}-tree"), inner, vec![frame.layer().clone()]);
        let layer = Layer::new(name, outputs, vec![middle]);
        Ok(Frame::from_layer(out_schema, layer).sorted_by(self.keys.clone()))
    }
}

/// Everything the group-by ops need to know.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Plan {
    keys: Vec<String>,
    specs: Vec<Spec>,
    dropna: bool,
    parts: usize,
}

/// Group ids for the rows of some key columns: `ids[row]` (`u32::MAX` for a dropped
/// null key) and the first row of each group. Groups are numbered part by part
/// (a group's part is its key hash modulo the part count), in order of first
/// appearance within a part, so each part's groups are a contiguous range.
struct Groups {
    ids: Vec<u32>,
    first_rows: Vec<u32>,
    /// The groups of part `p` are `part_ends[p - 1]..part_ends[p]`.
    part_ends: Vec<usize>,
    /// Group ids by key hash; the key bytes of group g are `arena[ends[g-1]..ends[g]]`.
    table: HashTable<u32>,
    hashes: Vec<u64>,
    arena: Vec<u8>,
    ends: Vec<usize>,
}

const DROPPED: u32 = u32::MAX;

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
fn group(
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

/// Per-group accumulators for one spec.
enum Acc {
    SumI(Vec<i64>),
    SumF(Vec<f64>),
    Mean(Vec<f64>, Vec<i64>),
    Count(Vec<i64>),
    Moments(Vec<i64>, Vec<f64>, Vec<f64>),
}

/// Whether the input is raw values (a partition) or state columns (a combine).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Input {
    Values,
    States,
}

fn f64s(a: &ArrayRef) -> std::result::Result<Float64Array, arrow::error::ArrowError> {
    Ok(arrow::compute::cast(a, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
}

fn i64s(a: &ArrayRef) -> std::result::Result<Int64Array, arrow::error::ArrowError> {
    Ok(arrow::compute::cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
}

/// Aggregates `batch` (values or states) per group: the state batch.
fn aggregate(
    plan: &Plan,
    batch: &RecordBatch,
    input: Input,
) -> std::result::Result<(RecordBatch, Vec<usize>), arrow::error::ArrowError> {
    let key_cols: Vec<ArrayRef> = plan
        .keys
        .iter()
        .map(|k| {
            batch.column_by_name(k).cloned().ok_or_else(|| {
                arrow::error::ArrowError::SchemaError(format!("no key column '{k}'"))
            })
        })
        .collect::<std::result::Result<_, _>>()?;
    let (dropna, parts) = match input {
        Input::Values => (plan.dropna, plan.parts),
        Input::States => (false, 1),
    };
    let mut g = group(&key_cols, dropna, parts)?;
    let ng = g.first_rows.len();
    let first = UInt32Array::from(std::mem::take(&mut g.first_rows));
    let mut columns: Vec<ArrayRef> = key_cols
        .iter()
        .map(|k| arrow::compute::take(k, &first, None))
        .collect::<std::result::Result<_, _>>()?;
    let mut fields: Vec<Field> = plan
        .keys
        .iter()
        .zip(&key_cols)
        .map(|(k, c)| Field::new(k, c.data_type().clone(), true))
        .collect();
    for (i, spec) in plan.specs.iter().enumerate() {
        let state_fields = spec.state_fields(i);
        // The columns this spec reads: its value column, or its state columns.
        let inputs: Vec<ArrayRef> = match input {
            Input::Values if spec.agg == Agg::Size => vec![],
            Input::Values => {
                vec![batch.column_by_name(&spec.column).cloned().ok_or_else(|| {
                    arrow::error::ArrowError::SchemaError(format!("no column '{}'", spec.column))
                })?]
            }
            Input::States => state_fields
                .iter()
                .map(|f| {
                    batch.column_by_name(f.name()).cloned().ok_or_else(|| {
                        arrow::error::ArrowError::SchemaError(format!("no state '{}'", f.name()))
                    })
                })
                .collect::<std::result::Result<_, _>>()?,
        };
        let ids = &g.ids;
        let acc = match (spec.agg, input) {
            (Agg::Sum, _) if spec.integer() => {
                let v = i64s(&inputs[0])?;
                let mut s = vec![0i64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        s[id as usize] = s[id as usize].wrapping_add(v.value(r));
                    }
                }
                Acc::SumI(s)
            }
            (Agg::Sum, _) => {
                let v = f64s(&inputs[0])?;
                let mut s = vec![0f64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        s[id as usize] += v.value(r);
                    }
                }
                Acc::SumF(s)
            }
            (Agg::Mean, Input::Values) => {
                let v = f64s(&inputs[0])?;
                let (mut s, mut n) = (vec![0f64; ng], vec![0i64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        s[id as usize] += v.value(r);
                        n[id as usize] += 1;
                    }
                }
                Acc::Mean(s, n)
            }
            (Agg::Mean, Input::States) => {
                let (vs, vn) = (f64s(&inputs[0])?, i64s(&inputs[1])?);
                let (mut s, mut n) = (vec![0f64; ng], vec![0i64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    s[id as usize] += vs.value(r);
                    n[id as usize] += vn.value(r);
                }
                Acc::Mean(s, n)
            }
            (Agg::Count | Agg::Size, Input::States) => {
                let v = i64s(&inputs[0])?;
                let mut n = vec![0i64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    n[id as usize] += v.value(r);
                }
                Acc::Count(n)
            }
            (Agg::Size, Input::Values) => {
                let mut n = vec![0i64; ng];
                ids.iter().filter(|&&id| id != DROPPED).for_each(|&id| n[id as usize] += 1);
                Acc::Count(n)
            }
            (Agg::Count, Input::Values) => {
                let v = &inputs[0];
                let mut n = vec![0i64; ng];
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        n[id as usize] += 1;
                    }
                }
                Acc::Count(n)
            }
            (Agg::Var | Agg::Std, Input::Values) => {
                // Welford per group, in row order.
                let v = f64s(&inputs[0])?;
                let (mut n, mut mean, mut m2) = (vec![0i64; ng], vec![0f64; ng], vec![0f64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        let g = id as usize;
                        n[g] += 1;
                        let x = v.value(r);
                        let delta = x - mean[g];
                        mean[g] += delta / n[g] as f64;
                        m2[g] += delta * (x - mean[g]);
                    }
                }
                Acc::Moments(n, mean, m2)
            }
            (Agg::Var | Agg::Std, Input::States) => {
                // Chan et al.'s parallel update, states merged in row order.
                let (vn, vm, vq) = (i64s(&inputs[0])?, f64s(&inputs[1])?, f64s(&inputs[2])?);
                let (mut n, mut mean, mut m2) = (vec![0i64; ng], vec![0f64; ng], vec![0f64; ng]);
                for (r, &id) in ids.iter().enumerate() {
                    let g = id as usize;
                    let nb = vn.value(r);
                    if nb == 0 {
                        continue;
                    }
                    let total = n[g] + nb;
                    let delta = vm.value(r) - mean[g];
                    mean[g] += delta * nb as f64 / total as f64;
                    m2[g] += vq.value(r) + delta * delta * n[g] as f64 * nb as f64 / total as f64;
                    n[g] = total;
                }
                Acc::Moments(n, mean, m2)
            }
            (Agg::Nunique, _) => {
                // The distinct values of each group, as a list per group.
                let set = match input {
                    Input::Values => {
                        let pairs = ids
                            .iter()
                            .enumerate()
                            .filter(|(_, g)| **g != DROPPED)
                            .map(|(r, &g)| (r, g));
                        distinct_lists(ng, &inputs[0], pairs)?
                    }
                    Input::States => {
                        let lists = inputs[0].as_list::<i32>();
                        let offsets = lists.value_offsets();
                        let pairs = ids.iter().enumerate().flat_map(|(r, &g)| {
                            (offsets[r] as usize..offsets[r + 1] as usize).map(move |j| (j, g))
                        });
                        distinct_lists(ng, lists.values(), pairs)?
                    }
                };
                columns.push(set);
                fields.extend(state_fields);
                continue;
            }
            (Agg::Min | Agg::Max | Agg::First | Agg::Last, _) => {
                let v = arrow::compute::cast(&inputs[0], &spec.value_type())?;
                let mut best: Vec<Option<u32>> = vec![None; ng];
                let wins: Box<dyn Fn(usize, usize) -> bool> = match (spec.agg, v.data_type()) {
                    (Agg::First, _) => Box::new(|_, _| false),
                    (Agg::Last, _) => Box::new(|_, _| true),
                    (agg, DataType::Int64) => {
                        let a = v.as_primitive::<Int64Type>().clone();
                        let min = agg == Agg::Min;
                        Box::new(move |r, b| {
                            if min { a.value(r) < a.value(b) } else { a.value(r) > a.value(b) }
                        })
                    }
                    (agg, _) => {
                        // pandas skips NaN as it skips nulls.
                        let a = f64s(&v)?;
                        let min = agg == Agg::Min;
                        Box::new(move |r, b| {
                            let (x, y) = (a.value(r), a.value(b));
                            !x.is_nan() && (y.is_nan() || if min { x < y } else { x > y })
                        })
                    }
                };
                for (r, &id) in ids.iter().enumerate() {
                    if id != DROPPED && v.is_valid(r) {
                        let slot = &mut best[id as usize];
                        if slot.is_none_or(|b| wins(r, b as usize)) {
                            *slot = Some(r as u32);
                        }
                    }
                }
                // Min/max/first/last keep the winning row's value.
                let idx = UInt32Array::from(best);
                columns.push(arrow::compute::take(&v, &idx, None)?);
                fields.extend(state_fields);
                continue;
            }
        };
        match acc {
            Acc::SumI(s) => columns.push(Arc::new(Int64Array::from(s))),
            Acc::SumF(s) => columns.push(Arc::new(Float64Array::from(s))),
            Acc::Mean(s, n) => {
                columns.push(Arc::new(Float64Array::from(s)));
                columns.push(Arc::new(Int64Array::from(n)));
            }
            Acc::Count(n) => columns.push(Arc::new(Int64Array::from(n))),
            Acc::Moments(n, m, q) => {
                columns.push(Arc::new(Int64Array::from(n)));
                columns.push(Arc::new(Float64Array::from(m)));
                columns.push(Arc::new(Float64Array::from(q)));
            }
        }
        fields.extend(state_fields);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok((batch, g.part_ends))
}

/// Per group, the distinct non-null values among `pairs` (index into `values`,
/// group id), in order of first appearance: a list array of `groups` rows.
fn distinct_lists(
    groups: usize,
    values: &ArrayRef,
    pairs: impl Iterator<Item = (usize, u32)>,
) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let converter = RowConverter::new(vec![SortField::new(values.data_type().clone())])?;
    let rows = converter.convert_columns(std::slice::from_ref(values))?;
    let hash = |g: u32, j: usize| {
        fixed_hash(rows.row(j).as_ref()) ^ u64::from(g).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    };
    let mut seen: HashTable<(u32, u32)> = HashTable::new();
    let mut per_group: Vec<Vec<u32>> = vec![Vec::new(); groups];
    for (j, g) in pairs {
        if values.is_null(j) {
            continue;
        }
        let h = hash(g, j);
        let same = |&(g2, j2): &(u32, u32)| g2 == g && rows.row(j2 as usize) == rows.row(j);
        if seen.find(h, same).is_none() {
            seen.insert_unique(h, (g, j as u32), |&(g2, j2)| hash(g2, j2 as usize));
            per_group[g as usize].push(j as u32);
        }
    }
    let lengths = per_group.iter().map(Vec::len);
    let offsets = arrow::buffer::OffsetBuffer::from_lengths(lengths);
    let idx = UInt32Array::from(per_group.concat());
    let items = arrow::compute::take(values, &idx, None)?;
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    Ok(Arc::new(arrow::array::ListArray::try_new(field, offsets, items, None)?))
}

/// A state batch split into its parts: part `p` is rows `part_ends[p - 1]..part_ends[p]`,
/// copied so that each part's memory is its own.
fn split(
    batch: RecordBatch,
    part_ends: &[usize],
) -> std::result::Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    if part_ends.len() <= 1 {
        return Ok(vec![batch]);
    }
    let data: Vec<ArrayData> = batch.columns().iter().map(|c| c.to_data()).collect();
    let mut start = 0;
    part_ends
        .iter()
        .map(|&end| {
            let columns = data
                .iter()
                .map(|d| {
                    let mut part = MutableArrayData::new(vec![d], false, end - start);
                    part.try_extend(0, start, end)?;
                    Ok(make_array(part.freeze()))
                })
                .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()?;
            start = end;
            RecordBatch::try_new(batch.schema(), columns)
        })
        .collect()
}

/// The state batches among `inputs`, taking part `part` of split partials.
fn states(op: &str, inputs: &[Value], part: Option<u32>) -> brisk_core::Result<Vec<RecordBatch>> {
    inputs
        .iter()
        .map(|v| match (v, part) {
            (Value::List(items), Some(p)) => batch_of(
                op,
                items.get(p as usize).ok_or_else(|| {
                    CoreError::Internal(format!("{op}: no part {p} in a split state"))
                })?,
            ),
            (v, _) => batch_of(op, v),
        })
        .collect()
}

fn combine(
    plan: &Plan,
    op: &str,
    inputs: &[Value],
    part: Option<u32>,
) -> brisk_core::Result<RecordBatch> {
    let batches = states(op, inputs, part)?;
    let single = batches.len() == 1;
    let all = concat_all(op, batches)?;
    if single {
        return Ok(all);
    }
    Ok(aggregate(plan, &all, Input::States).map_err(arrow_err(op))?.0)
}

/// A partition's partial state, split into the plan's parts.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Partial {
    plan: Plan,
}

impl OpKind for Partial {
    const NAME: &'static str = "frame.groupby-partial";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let batch = first_batch(Self::NAME, &inputs)?;
        let (state, part_ends) = aggregate(&self.plan, &batch, Input::Values).map_err(&err)?;
        let parts = split(state, &part_ends).map_err(&err)?;
        Ok(Value::from(parts.into_iter().map(Value::from).collect::<Vec<_>>()))
    }
}

/// States merged: one node of the tree.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Combine {
    plan: Plan,
    part: Option<u32>,
}

impl OpKind for Combine {
    const NAME: &'static str = "frame.groupby-combine";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        Ok(Value::from(combine(&self.plan, Self::NAME, &inputs, self.part)?))
    }
}

/// The result columns of one part, sorted by key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Finish {
    plan: Plan,
    part: Option<u32>,
}

impl OpKind for Finish {
    const NAME: &'static str = "frame.groupby-finish";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let err = arrow_err(Self::NAME);
        let state = combine(&self.plan, Self::NAME, &inputs, self.part)?;
        let nk = self.plan.keys.len();
        let mut columns: Vec<ArrayRef> = state.columns()[..nk].to_vec();
        let mut fields: Vec<Field> =
            state.schema().fields()[..nk].iter().map(|f| f.as_ref().clone()).collect();
        let col = |name: String| {
            state
                .column_by_name(&name)
                .cloned()
                .ok_or_else(|| CoreError::Internal(format!("no state {name}")))
        };
        for (i, spec) in self.plan.specs.iter().enumerate() {
            let out: ArrayRef = match spec.agg {
                Agg::Sum => col(format!("__{i}_sum"))?,
                Agg::Count | Agg::Size => col(format!("__{i}_n"))?,
                Agg::Min | Agg::Max | Agg::First | Agg::Last => col(format!("__{i}_v"))?,
                Agg::Nunique => {
                    let set = col(format!("__{i}_set"))?;
                    let lists = set.as_list::<i32>();
                    Arc::new(Int64Array::from_iter_values(
                        lists.value_offsets().windows(2).map(|w| i64::from(w[1] - w[0])),
                    ))
                }
                Agg::Mean => {
                    let s = f64s(&col(format!("__{i}_sum"))?).map_err(&err)?;
                    let n = i64s(&col(format!("__{i}_n"))?).map_err(&err)?;
                    Arc::new(
                        s.iter()
                            .zip(n.iter())
                            .map(|(s, n)| match (s, n) {
                                (Some(s), Some(n)) if n > 0 => Some(s / n as f64),
                                _ => None,
                            })
                            .collect::<Float64Array>(),
                    )
                }
                Agg::Var | Agg::Std => {
                    let n = i64s(&col(format!("__{i}_n"))?).map_err(&err)?;
                    let q = f64s(&col(format!("__{i}_m2"))?).map_err(&err)?;
                    let std = spec.agg == Agg::Std;
                    Arc::new(
                        n.iter()
                            .zip(q.iter())
                            .map(|(n, q)| match (n, q) {
                                (Some(n), Some(q)) if n > 1 => {
                                    let v = q / (n - 1) as f64;
                                    Some(if std { v.sqrt() } else { v })
                                }
                                _ => None,
                            })
                            .collect::<Float64Array>(),
                    )
                }
            };
            fields.push(Field::new(&spec.out, out.data_type().clone(), true));
            columns.push(out);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(&err)?;
        Ok(Value::from(sort_batch(&batch, nk).map_err(&err)?))
    }
}
