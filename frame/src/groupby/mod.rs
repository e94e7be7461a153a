//! Group-by aggregations: a partial state per partition, hash-split into parts,
//! each part combined in a fixed tree (`split_every`) and finished once; the
//! result is sorted by key.
//!
//! A state is a record batch: the key columns and, per aggregation, its state
//! columns (a sum; a sum and a count; count, mean and M2 for var/std; ...).
//! Partial and combine share one accumulator: combine just feeds it states
//! instead of values.
//!
//! - this file: the API ([`GroupBy`], [`Agg`]) and the graph it builds;
//! - `hash`: rows to group ids, with the fixed hash (the join splits by it too);
//! - `accumulate`: per-group states from values or from states;
//! - `ops`: the Partial, Combine and Finish ops.

mod accumulate;
pub(crate) mod hash;
mod ops;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use brisk_core::{Key, Op};
use brisk_graph::{DEFAULT_SPLIT_EVERY, Layer, Task, combine_tree, token};
use serde::{Deserialize, Serialize};

use crate::expr::{Expr, col, is_numeric};
use crate::frame::Frame;
use crate::{Error, Result};
pub(crate) use ops::{Combine, Finish, Partial};

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

/// One aggregation of an expression, with its output column's name:
/// `AggExpr::new("revenue", Agg::Sum, col("price") * (lit(1) - col("discount")))`,
/// or [`AggExpr::count_rows`] for SQL's `count(*)`. The output's type is the
/// aggregation's of the expression's type.
#[derive(Clone, Debug)]
pub struct AggExpr {
    /// The output column's name.
    pub name: String,
    /// The aggregation.
    pub agg: Agg,
    /// What is aggregated; `None` for the rows themselves (`count(*)`).
    pub expr: Option<Expr>,
}

impl AggExpr {
    /// `agg` of `expr`, named `name`.
    pub fn new(name: impl Into<String>, agg: Agg, expr: Expr) -> AggExpr {
        AggExpr { name: name.into(), agg, expr: Some(expr) }
    }

    /// The number of rows, nulls included (SQL's `count(*)`), named `name`.
    pub fn count_rows(name: impl Into<String>) -> AggExpr {
        AggExpr { name: name.into(), agg: Agg::Size, expr: None }
    }
}

/// Aggregations written as text, comma-separated (commas inside parentheses or
/// quotes belong to the expression): `NAME=FN(EXPR)` (`revenue=sum(price * (1 -
/// discount))`), `FN(EXPR)` (named as written, `sum(v1)`), `count(*)` (rows),
/// or the column form `COL:FN` (named `COL_FN`). FN: sum, mean (or avg), count,
/// size, min, max, std, var, first, last, nunique. Expressions are parsed and
/// type-checked against `schema`; a mistake points at its position in `text`.
///
/// ```
/// use brisk_frame::{Agg, parse_aggs};
/// use brisk_frame::arrow::datatypes::{DataType, Field, Schema};
/// let schema = Schema::new(vec![Field::new("p", DataType::Float64, true)]);
/// let aggs = parse_aggs("revenue=sum(p * (1 - p)), n=count(*), p:max", &schema)?;
/// assert_eq!(aggs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["revenue", "n", "p_max"]);
/// assert_eq!(aggs[1].agg, Agg::Size);
/// assert!(parse_aggs("x=sum(p + 'a')", &schema).unwrap_err().to_string().contains('^'));
/// # Ok::<(), brisk_frame::Error>(())
/// ```
pub fn parse_aggs(text: &str, schema: &Schema) -> Result<Vec<AggExpr>> {
    let located = |at: usize, message: &str| crate::expr::located(text, at, message);
    let mut out = Vec::new();
    for (start, item) in top_level_items(text) {
        let lead = item.len() - item.trim_start().len();
        let (at, item) = (start + lead, item.trim());
        if item.is_empty() {
            return Err(located(at, "expected an aggregation (NAME=FN(EXPR) or COL:FN)"));
        }
        // `COL:FN`: a column and a function name, no parentheses.
        if !item.contains('(')
            && let Some((c, f)) = item.split_once(':')
        {
            let agg = agg_named(f.trim()).ok_or_else(|| {
                located(at + c.len() + 1, &format!("unknown aggregation '{}'{AGGS}", f.trim()))
            })?;
            let c = c.trim();
            if schema.field_with_name(c).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(located(at, &crate::error::unknown_column(c, &names).to_string()));
            }
            out.push(AggExpr::new(format!("{c}_{}", agg.name()), agg, col(c)));
            continue;
        }
        // `[NAME=]FN(EXPR)`: `=` before the first parenthesis names it.
        let paren = item.find('(');
        let (name, call, call_at) = match item.find('=') {
            Some(eq) if paren.is_none_or(|p| eq < p) => {
                let rest = &item[eq + 1..];
                let skip = rest.len() - rest.trim_start().len();
                (Some(item[..eq].trim()), rest.trim(), at + eq + 1 + skip)
            }
            _ => (None, item, at),
        };
        if name.is_some_and(str::is_empty) {
            return Err(located(at, "an aggregation's name is empty (NAME=FN(EXPR))"));
        }
        let name = name.map(|n| n.trim_matches('`').to_string());
        let Some(open) = call.find('(') else {
            return Err(located(call_at, "expected FN(EXPR), for example sum(v1)"));
        };
        if !call.ends_with(')') {
            return Err(located(
                call_at + call.len(),
                "expected ')' at the end of the aggregation",
            ));
        }
        let fname = call[..open].trim();
        let agg = agg_named(fname)
            .ok_or_else(|| located(call_at, &format!("unknown aggregation '{fname}'{AGGS}")))?;
        let inner = &call[open + 1..call.len() - 1];
        let inner_at = call_at + open + 1;
        let named = name.unwrap_or_else(|| call.split_whitespace().collect::<Vec<_>>().join(" "));
        if inner.trim() == "*" {
            if !matches!(agg, Agg::Count | Agg::Size) {
                return Err(located(
                    inner_at,
                    &format!("{fname}(*) is not an aggregation; * counts rows in count(*)"),
                ));
            }
            out.push(AggExpr::count_rows(named));
            continue;
        }
        let expr = crate::expr::parse_at(text, inner_at, inner, schema)?;
        out.push(AggExpr::new(named, agg, expr));
    }
    Ok(out)
}

const AGGS: &str =
    "; use one of sum, mean (avg), count, size, min, max, std, var, first, last, nunique";

/// An aggregation by name, with SQL's `avg` for mean.
fn agg_named(name: &str) -> Option<Agg> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "avg" => Some(Agg::Mean),
        "stddev" => Some(Agg::Std),
        "variance" => Some(Agg::Var),
        other => Agg::parse(other),
    }
}

/// The comma-separated items of `text` outside parentheses and quotes, each with
/// its byte offset.
fn top_level_items(text: &str) -> Vec<(usize, &str)> {
    let mut items = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, ch) in text.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                items.push((start, &text[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push((start, &text[start..]));
    items
}

/// One output column: `agg` of `column`, named `out`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(super) column: String,
    pub(super) agg: Agg,
    pub(super) out: String,
    /// The input column's type (as Arrow prints it).
    input: String,
}

impl Spec {
    pub(super) fn input_type(&self) -> DataType {
        self.input.parse().unwrap_or(DataType::Utf8)
    }

    /// Whether sums, minima and maxima stay in Int64.
    pub(super) fn integer(&self) -> bool {
        let t = self.input_type();
        t.is_integer() || t == DataType::Boolean
    }

    /// The type min/max/first/last states and results keep.
    pub(super) fn value_type(&self) -> DataType {
        let t = self.input_type();
        match self.agg {
            // Unsigned 64-bit values may not fit Int64: they stay unsigned.
            Agg::Min | Agg::Max if t == DataType::UInt64 => DataType::UInt64,
            Agg::Min | Agg::Max if t.is_integer() || t == DataType::Boolean => DataType::Int64,
            Agg::Min | Agg::Max if t.is_floating() || t == DataType::Null => DataType::Float64,
            _ => t,
        }
    }

    /// The state of a group that saw no value: counts, sums and moments 0; values
    /// kept (min, max, first, last) and distinct sets null.
    pub(super) fn empty_state(
        &self,
        i: usize,
    ) -> std::result::Result<Vec<ArrayRef>, arrow::error::ArrowError> {
        let zero = !matches!(self.agg, Agg::Min | Agg::Max | Agg::First | Agg::Last | Agg::Nunique);
        self.state_fields(i)
            .iter()
            .map(|f| {
                if zero {
                    arrow::compute::cast(&Int64Array::from(vec![0]), f.data_type())
                } else {
                    Ok(arrow::array::new_null_array(f.data_type(), 1))
                }
            })
            .collect()
    }

    pub(super) fn state_fields(&self, i: usize) -> Vec<Field> {
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
pub(super) const WHOLE: &str = "__brisk_whole";

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

    /// Aggregations of expressions over the whole frame, to one row (SQL's
    /// `select sum(a * b) as x, count(*) as n from ...`); see
    /// [`GroupBy::agg_exprs`].
    pub fn agg_exprs(&self, aggs: impl IntoIterator<Item = AggExpr>) -> Result<Frame> {
        self.whole()?.agg_exprs(aggs)?.drop([WHOLE])
    }

    /// `agg` over every numeric column to one row, columns keeping their names, as
    /// pandas' `df.mean()`.
    pub fn agg_numeric(&self, agg: Agg) -> Result<Frame> {
        self.whole()?.agg_numeric(agg)?.drop([WHOLE])
    }

    /// One group holding every row: a constant key, dropped from the results. One
    /// part, so the finish that sees no rows knows the whole input had none.
    fn whole(&self) -> Result<GroupBy> {
        Ok(self.with_column(WHOLE, crate::expr::lit(true))?.groupby([WHOLE])?.split_out(1))
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
        Self::spec_of(column, input, agg, out)
    }

    /// The spec of `agg` over a column of type `input`.
    fn spec_of(column: &str, input: DataType, agg: Agg, out: String) -> Result<Spec> {
        // A Null column (no values: a header-only file) is accepted by every
        // aggregation, as an empty numeric column.
        let numeric = is_numeric(&input) || input == DataType::Boolean;
        if agg.numeric_only() && !numeric {
            return Err(Error::Type {
                column: column.to_string(),
                reason: format!("{} needs a numeric column, not {input}", agg.name()),
            });
        }
        if matches!(agg, Agg::Min | Agg::Max) && !numeric {
            return Err(Error::Type {
                column: column.to_string(),
                reason: format!("{} supports numeric columns so far, not {input}", agg.name()),
            });
        }
        Ok(Spec { column: column.to_string(), agg, out, input: input.to_string() })
    }

    /// Aggregations of expressions, each named (SQL's `select k, sum(a * b) as
    /// x, count(*) as n ... group by k`): expressions that are not plain
    /// columns are computed per partition before the partial aggregation, and
    /// only the columns they read are read.
    pub fn agg_exprs(&self, aggs: impl IntoIterator<Item = AggExpr>) -> Result<Frame> {
        let aggs: Vec<AggExpr> = aggs.into_iter().collect();
        // Keys, then each aggregation's input: a column as it is, or a derived one.
        let mut exprs: Vec<(String, Expr)> =
            self.keys.iter().map(|k| (k.clone(), col(k))).collect();
        let mut inputs = Vec::with_capacity(aggs.len());
        for (i, a) in aggs.iter().enumerate() {
            let input = match &a.expr {
                None => String::new(),
                Some(Expr::Col(c)) => {
                    self.frame.check_column(c)?;
                    c.clone()
                }
                Some(e) => {
                    // A name no column of the frame has.
                    let mut name = format!("__brisk_agg_{i}");
                    while self.frame.schema().field_with_name(&name).is_ok() {
                        name.insert(0, '_');
                    }
                    exprs.push((name.clone(), e.clone()));
                    name
                }
            };
            if !input.is_empty() && !exprs.iter().any(|(n, _)| *n == input) {
                exprs.push((input.clone(), col(&input)));
            }
            inputs.push(input);
        }
        let grouped = GroupBy { frame: self.frame.project(exprs)?, ..self.clone() };
        let specs = aggs
            .iter()
            .zip(&inputs)
            .map(|(a, input)| {
                grouped.spec(input, a.agg, a.name.clone()).map_err(|e| match (e, &a.expr) {
                    // Errors name what was written, not the derived column.
                    (Error::Type { reason, .. }, Some(x)) => {
                        Error::Type { column: x.to_string(), reason }
                    }
                    (e, _) => e,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        grouped.build(specs)
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
            .filter(|f| !self.keys.contains(f.name()) && is_numeric(f.data_type()))
            .map(|f| Self::spec_of(f.name(), f.data_type().clone(), agg, f.name().clone()))
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
        let mut seen: std::collections::HashSet<&str> =
            self.keys.iter().map(String::as_str).collect();
        for s in &specs {
            if !s.column.is_empty() && seen.insert(&s.column) {
                needed.push(s.column.clone());
            }
        }
        let frame = self.frame.projected(&needed)?;
        let schema = frame.schema();
        let mut fields: Vec<Field> =
            self.keys.iter().map(|k| schema.field_with_name(k).expect("checked").clone()).collect();
        let mut outs: std::collections::HashSet<&str> =
            self.keys.iter().map(String::as_str).collect();
        for s in &specs {
            if !outs.insert(&s.out) {
                return Err(Error::Invalid(format!("output column '{}' is given twice", s.out)));
            }
            fields.push(Field::new(&s.out, s.output_type(), true));
        }
        let out_schema: SchemaRef = Arc::new(Schema::new(fields));
        let n = frame.npartitions();
        let parts = self.split_out.unwrap_or(n.clamp(1, MAX_SPLIT_OUT));
        let plan = AggPlan { keys: self.keys.clone(), specs, dropna: self.dropna, parts };
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
pub(crate) struct AggPlan {
    pub(super) keys: Vec<String>,
    pub(super) specs: Vec<Spec>,
    pub(super) dropna: bool,
    pub(super) parts: usize,
}

impl AggPlan {
    /// Whether this is a whole-frame aggregation (one constant key of its own).
    pub(super) fn whole(&self) -> bool {
        self.keys.len() == 1 && self.keys[0] == WHOLE
    }
}
