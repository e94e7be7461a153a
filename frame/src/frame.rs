//! The lazy partitioned frame and its computed form, the [`Table`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use brisk_core::{Error as CoreError, Key, Op, OpKind, Value};
use brisk_graph::{Collection, GraphBuilder, Layer, Task, token};
use serde::{Deserialize, Serialize};

use crate::batches::{ByName, arrow_err, batch_of, first_batch};
use crate::error::unknown_column;
use crate::expr::{Expr, col};
use crate::table::Table;
use crate::{Error, Result};

/// A lazy dataframe: a sequence of partitions, each one task giving an Arrow
/// `RecordBatch`, with a schema known when it is built (Dask's `meta`).
///
/// ```
/// use brisk_frame::{Frame, col, lit};
/// use brisk_scheduler::Compute;
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
/// let batch = RecordBatch::try_from_iter([
///     ("k", Arc::new(StringArray::from(vec!["a", "b", "a"])) as ArrayRef),
///     ("v", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
/// ])?;
/// let df = Frame::from_batches(vec![batch])?;
/// let t = df.filter(col("v").gt(lit(1)))?.compute()?;
/// assert_eq!(t.num_rows(), 2);
/// assert!(df.select(["vv"]).unwrap_err().to_string().contains("did you mean 'v'"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Frame {
    schema: SchemaRef,
    layer: Arc<Layer>,
    /// Columns the computed table is sorted by (a group-by's keys): each partition
    /// is sorted, and `compute` sorts the whole.
    sort_keys: Option<Vec<String>>,
    /// For a frame that is a plain read: how to read only some columns instead.
    source: Option<Reproject>,
}

/// Rebuilds a read with only the given columns (projection pushdown); the flag
/// says to rebuild even when every column is asked for: a step over a read,
/// whose own inputs may still be fewer than the read's columns.
#[derive(Clone)]
pub(crate) struct Reproject(
    pub(crate) Arc<dyn Fn(Vec<String>) -> Result<Frame> + Send + Sync>,
    pub(crate) bool,
);

impl std::fmt::Debug for Reproject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reproject")
    }
}

/// The position of the column `e` is, when it is a plain column: found by hash
/// (a wide frame projects thousands), not by scanning the schema.
fn plain_column(e: &Expr, by_name: &ByName) -> Option<usize> {
    match e {
        Expr::Col(c) => by_name.get(c),
        _ => None,
    }
}

impl Frame {
    pub(crate) fn from_layer(schema: SchemaRef, layer: Arc<Layer>) -> Frame {
        Frame { schema, layer, sort_keys: None, source: None }
    }

    /// The same frame, able to re-read only some columns.
    pub(crate) fn with_source(mut self, source: Reproject) -> Frame {
        self.source = Some(source);
        self
    }

    /// A frame with the same rows and at least `columns`: a plain read re-reads only
    /// those (in file order), any other frame is returned as it is.
    pub(crate) fn projected(&self, columns: &[String]) -> Result<Frame> {
        match &self.source {
            Some(Reproject(f, always)) if *always || columns.len() < self.schema.fields().len() => {
                f(columns.to_vec())
            }
            _ => Ok(self.clone()),
        }
    }

    /// A frame of batches in memory, one partition (a constant task) each.
    fn held(schema: SchemaRef, name: String, batches: Vec<RecordBatch>) -> Frame {
        let base = Key::named(name.as_str());
        let tasks = batches
            .into_iter()
            .enumerate()
            .map(|(i, b)| Task::root(base.with_index([i as u32]), Op::Const(Value::from(b))))
            .collect();
        Frame::from_layer(schema, Layer::new(name, tasks, vec![]))
    }

    /// The columns the computed table is sorted by, if any (a group-by's keys).
    pub(crate) fn sort_keys(&self) -> Option<&[String]> {
        self.sort_keys.as_deref()
    }

    /// The same frame, whose computed table is sorted by `keys`.
    pub(crate) fn sorted_by(mut self, keys: Vec<String>) -> Frame {
        self.sort_keys = Some(keys);
        self
    }

    /// A frame of batches already in memory, one partition each. They must share
    /// one schema.
    pub fn from_batches(batches: Vec<RecordBatch>) -> Result<Frame> {
        let first = batches
            .first()
            .map(RecordBatch::schema)
            .ok_or_else(|| Error::Invalid("from_batches needs at least one batch".into()))?;
        // One schema, every column nullable: batches may differ only in that.
        let fields: Vec<Field> =
            first.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let same = |b: &RecordBatch| {
            b.schema().fields().len() == schema.fields().len()
                && b.schema()
                    .fields()
                    .iter()
                    .zip(schema.fields())
                    .all(|(a, f)| a.name() == f.name() && a.data_type() == f.data_type())
        };
        if let Some(b) = batches.iter().find(|b| !same(b)) {
            return Err(Error::Invalid(format!(
                "batches have different schemas: {:?} and {:?}",
                first.fields(),
                b.schema().fields()
            )));
        }
        let batches = batches
            .into_iter()
            .map(|b| b.with_schema(schema.clone()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(e.to_string()))?;
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Frame::held(schema, token("from-batches", &(std::process::id(), n)), batches))
    }

    /// The schema every partition has.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The column names.
    pub fn columns(&self) -> Vec<&str> {
        self.schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    /// How many partitions.
    pub fn npartitions(&self) -> usize {
        self.layer.tasks().len()
    }

    pub(crate) fn layer(&self) -> &Arc<Layer> {
        &self.layer
    }

    pub(crate) fn partition_keys(&self) -> impl Iterator<Item = &Key> {
        self.layer.keys()
    }

    /// The error for a name this frame lacks, or Ok.
    pub(crate) fn check_column(&self, name: &str) -> Result<()> {
        if self.schema.field_with_name(name).is_err() {
            return Err(unknown_column(name, &self.columns()));
        }
        Ok(())
    }

    /// A per-partition step applied to every partition.
    fn map(&self, prefix: &str, step: Step, schema: SchemaRef) -> Frame {
        let name = token(prefix, &(self.layer.name(), format!("{step:?}")));
        let base = Key::named(name.as_str());
        // Over a read: a later projection reads only what this step and the
        // columns asked for need (a filter's columns, a projection's inputs).
        let source = self.source.is_some().then(|| {
            let parent = self.clone();
            let step = step.clone();
            let reread = move |columns: Vec<String>| parent.reapplied(&step, columns);
            Reproject(Arc::new(reread), true)
        });
        let op = Op::data(MapBatch { step });
        let tasks = self
            .partition_keys()
            .map(|k| Task::new(base.with_index(k.index()), op.clone(), [k.clone()]))
            .collect();
        let keys =
            self.sort_keys.clone().filter(|k| k.iter().all(|c| schema.field_with_name(c).is_ok()));
        Frame {
            schema,
            layer: Layer::new(name, tasks, vec![self.layer.clone()]),
            sort_keys: keys,
            source,
        }
    }

    /// `step` applied again over this frame re-read with only the columns it
    /// needs to give `columns` (at least).
    fn reapplied(&self, step: &Step, columns: Vec<String>) -> Result<Frame> {
        let need = |exprs: &mut dyn Iterator<Item = &Expr>, mut need: Vec<String>| {
            for e in exprs {
                for c in e.columns() {
                    if !need.contains(&c) {
                        need.push(c);
                    }
                }
            }
            need
        };
        match step {
            Step::Filter(p) => {
                let need = need(&mut std::iter::once(p), columns);
                let parent = if need.is_empty() { self.clone() } else { self.projected(&need)? };
                parent.filter(p.clone())
            }
            Step::Project(exprs) => {
                let mut keep: Vec<(String, Expr)> =
                    exprs.iter().filter(|(n, _)| columns.contains(n)).cloned().collect();
                if keep.is_empty() {
                    keep.extend(exprs.first().cloned());
                }
                let need = need(&mut keep.iter().map(|(_, e)| e), Vec::new());
                let parent = if need.is_empty() { self.clone() } else { self.projected(&need)? };
                parent.project(keep)
            }
        }
    }

    /// Keeps the rows where an expression written as text holds, as pandas'
    /// `query`: `df.query("v1 > 2 and id1 == 'id001'")` (see [`parse_expr`](crate::parse_expr)).
    pub fn query(&self, text: &str) -> Result<Frame> {
        self.filter(crate::parse_expr_for(text, &self.schema)?)
    }

    /// The rows where `predicate` is true (null counts as false).
    pub fn filter(&self, predicate: Expr) -> Result<Frame> {
        let predicate = crate::expr::checked(predicate)?;
        let t = predicate.data_type(&self.schema)?;
        if t != arrow::datatypes::DataType::Boolean {
            return Err(Error::Type {
                column: predicate.to_string(),
                reason: format!("a filter needs a boolean expression, got {t}"),
            });
        }
        Ok(self.map("filter", Step::Filter(predicate), self.schema.clone()))
    }

    /// The given expressions as columns, each named by its pair.
    pub fn project(&self, exprs: Vec<(String, Expr)>) -> Result<Frame> {
        let exprs = exprs
            .into_iter()
            .map(|(name, e)| Ok((name, crate::expr::checked(e)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut fields = Vec::with_capacity(exprs.len());
        let mut names = std::collections::HashSet::with_capacity(exprs.len());
        let by_name = ByName::of(&self.schema);
        for (name, e) in &exprs {
            if !names.insert(name.as_str()) {
                return Err(Error::Invalid(format!("column '{name}' is given twice")));
            }
            let dtype = match plain_column(e, &by_name) {
                Some(i) => self.schema.field(i).data_type().clone(),
                None => e.data_type(&self.schema)?,
            };
            fields.push(Field::new(name, dtype, true));
        }
        Ok(self.map("project", Step::Project(exprs), Arc::new(Schema::new(fields))))
    }

    /// These columns only, in this order.
    pub fn select<S: AsRef<str>>(&self, columns: impl IntoIterator<Item = S>) -> Result<Frame> {
        self.project(
            columns.into_iter().map(|c| (c.as_ref().to_string(), col(c.as_ref()))).collect(),
        )
    }

    /// Adds (or replaces) a column computed by `expr`.
    pub fn with_column(&self, name: impl Into<String>, expr: Expr) -> Result<Frame> {
        let name = name.into();
        let mut exprs: Vec<(String, Expr)> =
            self.columns().into_iter().map(|c| (c.to_string(), col(c))).collect();
        match exprs.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = expr,
            None => exprs.push((name, expr)),
        }
        self.project(exprs)
    }

    /// Renames columns, `(old, new)` pairs.
    pub fn rename<A: AsRef<str>, B: AsRef<str>>(
        &self,
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Frame> {
        let mut exprs: Vec<(String, Expr)> =
            self.columns().into_iter().map(|c| (c.to_string(), col(c))).collect();
        for (old, new) in pairs {
            self.check_column(old.as_ref())?;
            if let Some(slot) = exprs.iter_mut().find(|(n, _)| n == old.as_ref()) {
                slot.0 = new.as_ref().to_string();
            }
        }
        self.project(exprs)
    }

    /// Without these columns.
    pub fn drop<S: AsRef<str>>(&self, columns: impl IntoIterator<Item = S>) -> Result<Frame> {
        let gone: Vec<String> = columns.into_iter().map(|c| c.as_ref().to_string()).collect();
        for c in &gone {
            self.check_column(c)?;
        }
        self.select(self.columns().into_iter().filter(|c| !gone.iter().any(|g| g == c)))
    }

    /// The first `n` rows, reading only the partitions it needs (first one, then
    /// twice as many each round, as Dask's `head(npartitions=...)` would), on the
    /// default scheduler.
    pub fn head(&self, n: usize) -> Result<Table> {
        self.head_on(n, brisk_scheduler::default_scheduler())
    }

    /// [`head`](Self::head) on `scheduler`.
    pub fn head_on(&self, n: usize, scheduler: &brisk_scheduler::Scheduler) -> Result<Table> {
        let mut take = 1;
        loop {
            let take_now = take.min(self.npartitions());
            let part = Partitions { frame: self.clone(), count: take_now };
            let t = scheduler.compute(&part)?;
            if t.num_rows() >= n || take_now == self.npartitions() {
                return Ok(t.slice(0, n.min(t.num_rows())));
            }
            take *= 2;
        }
    }

    /// Computes every partition now and returns a frame holding them in memory
    /// (Dask's `persist`): frames built on it reuse the results instead of reading
    /// and computing again. Same schema, same partitions. Runs on the default
    /// scheduler.
    pub fn persist(&self) -> Result<Frame> {
        self.persist_on(brisk_scheduler::default_scheduler())
    }

    /// [`persist`](Self::persist) on `scheduler`.
    pub fn persist_on(&self, scheduler: &brisk_scheduler::Scheduler) -> Result<Frame> {
        let batches = scheduler.compute(&Batches { frame: self.clone() })?;
        let name = token("persist", &self.layer.name());
        let mut frame = Frame::held(self.schema.clone(), name, batches);
        frame.sort_keys = self.sort_keys.clone();
        Ok(frame)
    }

    /// The number of rows, lazily: counts per partition (each partition is dropped
    /// once counted), summed.
    pub fn len(&self) -> RowCount {
        let name = token("len", &self.layer.name());
        let base = Key::named(name.as_str());
        let tasks = self
            .partition_keys()
            .map(|k| Task::new(base.with_index(k.index()), Op::data(CountRows), [k.clone()]))
            .collect();
        RowCount { layer: Layer::new(name, tasks, vec![self.layer.clone()]) }
    }

    /// Whether the frame has no columns (rows need a compute: see [`Frame::len`]).
    pub fn is_empty(&self) -> bool {
        self.schema.fields().is_empty()
    }
}

/// One per-partition step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Step {
    Filter(Expr),
    Project(Vec<(String, Expr)>),
}

/// A per-partition step as an op.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MapBatch {
    step: Step,
}

impl OpKind for MapBatch {
    const NAME: &'static str = "frame.map";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let batch = first_batch(Self::NAME, &inputs)?;
        let err = arrow_err(Self::NAME);
        let out = match &self.step {
            Step::Filter(e) => {
                let mask = e.evaluate(&batch).map_err(&err)?;
                let mask = mask
                    .as_any()
                    .downcast_ref::<arrow::array::BooleanArray>()
                    .ok_or_else(|| CoreError::Internal("filter mask is not boolean".into()))?;
                arrow::compute::filter_record_batch(&batch, mask).map_err(&err)?
            }
            Step::Project(exprs) => {
                let schema = batch.schema();
                let by_name = ByName::of(&schema);
                let columns = exprs
                    .iter()
                    .map(|(_, e)| match plain_column(e, &by_name) {
                        Some(i) => Ok(batch.column(i).clone()),
                        None => e.evaluate(&batch),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(&err)?;
                let fields: Vec<Field> = exprs
                    .iter()
                    .zip(&columns)
                    .map(|((n, _), c)| Field::new(n, c.data_type().clone(), true))
                    .collect();
                let options =
                    arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
                    .map_err(&err)?
            }
        };
        Ok(Value::from(out))
    }
}

impl Collection for Frame {
    type Output = Table;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.layer.add_to(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.partition_keys().cloned().collect()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Table> {
        let batches = values
            .iter()
            .map(|v| batch_of("compute", v))
            .collect::<brisk_core::Result<Vec<_>>>()?;
        let table = Table::new(self.schema.clone(), batches);
        match &self.sort_keys {
            Some(keys) if table.batches().len() > 1 => {
                // Put the key columns first, sort, and put them back.
                let err = arrow_err("sort");
                let all = table.to_batch();
                let order: Vec<usize> = keys
                    .iter()
                    .filter_map(|k| all.schema().index_of(k).ok())
                    .chain(
                        (0..all.num_columns())
                            .filter(|i| !keys.contains(all.schema().field(*i).name())),
                    )
                    .collect();
                let sorted =
                    crate::table::sort_batch(&all.project(&order).map_err(&err)?, keys.len())
                        .map_err(&err)?;
                let back: Vec<usize> = (0..order.len())
                    .map(|i| order.iter().position(|&o| o == i).expect("a permutation"))
                    .collect();
                Ok(Table::new(self.schema.clone(), vec![sorted.project(&back).map_err(&err)?]))
            }
            _ => Ok(table),
        }
    }
}

/// The first `count` partitions of a frame.
struct Partitions {
    frame: Frame,
    count: usize,
}

impl Collection for Partitions {
    type Output = Table;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.frame.add_tasks(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.frame.partition_keys().take(self.count).cloned().collect()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Table> {
        self.frame.finish(values)
    }
}

/// Every partition's batch, empty ones included.
struct Batches {
    frame: Frame,
}

impl Collection for Batches {
    type Output = Vec<RecordBatch>;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.frame.add_tasks(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.frame.output_keys()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Vec<RecordBatch>> {
        values.iter().map(|v| batch_of("persist", v)).collect()
    }
}

/// The number of rows of a partition.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CountRows;

impl OpKind for CountRows {
    const NAME: &'static str = "frame.count-rows";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let rows = inputs
            .iter()
            .map(|v| batch_of(Self::NAME, v).map(|b| b.num_rows() as i64))
            .sum::<brisk_core::Result<i64>>()?;
        Ok(Value::from(rows))
    }
}

/// A lazy row count (see [`Frame::len`]).
#[derive(Clone, Debug)]
pub struct RowCount {
    layer: Arc<Layer>,
}

impl Collection for RowCount {
    type Output = usize;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.layer.add_to(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.layer.keys().cloned().collect()
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<usize> {
        values
            .iter()
            .map(|v| match v.as_scalar() {
                Some(brisk_core::Scalar::I64(n)) => Ok(n as usize),
                _ => Err(CoreError::TypeMismatch { expected: "row count".into(), found: v.kind() }),
            })
            .sum()
    }
}
