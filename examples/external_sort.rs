//! # External sort: `sort_values` on a CSV larger than the memory budget
//!
//! ```sh
//! cargo run --release --example external_sort                      # writes a 90 MB CSV first
//! cargo run --release --example external_sort -- data.csv v3 128   # file, column, budget in MB
//! cargo run --release --example external_sort -- data.csv v3 128 --no-check   # to time the sort
//! ```
//!
//! Sorts every row of a CSV by one numeric column under a memory budget and writes
//! the result to a CSV beside it, then checks the output the long way: the same row
//! count and column sums as the input, and the column in order from the first line
//! to the last (read back as a stream, never held at once). Prints what the
//! scheduler did to stay inside the budget.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use brisk::frame::{Agg, CsvOptions, Table, read_csv};
use brisk::scheduler::{Callback, ComputeStats, Scheduler};

mod common;

const MB: f64 = 1e6;

/// Keeps the statistics of the last compute.
#[derive(Default)]
struct LastStats(Mutex<Option<ComputeStats>>);

impl Callback for LastStats {
    fn finish(&self, stats: &ComputeStats, _error: Option<&brisk::scheduler::Error>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stats.clone());
    }
}

/// Three million rows: a name, an integer and a float drawn at random.
fn write_demo(path: &Path) -> Result<(), Box<dyn Error>> {
    let mut text = String::from("name,n,v3\n");
    let mut x: u64 = 11;
    for i in 0..3_000_000u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        writeln!(
            text,
            "row{i:07},{},{:.6}",
            x >> 54,
            (x >> 11) as f64 / (1u64 << 53) as f64 * 100.0
        )?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// Row count and the sum of every numeric column, under the same budget.
fn fingerprint(path: &Path, budget: u64) -> Result<(usize, Table), Box<dyn Error>> {
    let frame = read_csv(path.to_string_lossy().as_ref(), CsvOptions::default())?;
    let scheduler = Scheduler::default().memory_limit(budget);
    Ok((scheduler.compute(&frame.len())?, scheduler.compute(&frame.agg_numeric(Agg::Sum)?)?))
}

/// Streams `column` of the CSV at `path` and returns the first position where it
/// decreases (nulls sort last), if any.
fn first_disorder(path: &Path, column: &str) -> Result<Option<usize>, Box<dyn Error>> {
    let schema = read_csv(path.to_string_lossy().as_ref(), CsvOptions::default())?.schema().clone();
    let index = schema.index_of(column)?;
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .with_batch_size(1 << 16)
        .with_projection(vec![index])
        .build(std::fs::File::open(path)?)?;
    let (mut previous, mut position) = (None::<Option<f64>>, 0usize);
    for batch in reader {
        let batch: RecordBatch = batch?;
        let values = arrow::compute::cast(batch.column(0), &DataType::Float64)?;
        let values = values.as_primitive::<Float64Type>();
        for i in 0..values.len() {
            let value = values.is_valid(i).then(|| values.value(i));
            let in_order = match (previous, value) {
                (Some(Some(a)), Some(b)) => a.total_cmp(&b).is_le(),
                (Some(None), Some(_)) => false,
                _ => true,
            };
            if !in_order {
                return Ok(Some(position));
            }
            previous = Some(value);
            position += 1;
        }
    }
    Ok(None)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::env::temp_dir().join(format!("brisk-external-sort-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let input = match args.first() {
        Some(p) => PathBuf::from(p),
        None => {
            let p = dir.join("demo.csv");
            println!("## Step 0: write a demo CSV ({})", p.display());
            write_demo(&p)?;
            p
        }
    };
    let column = args.get(1).map_or("v3", String::as_str);
    let budget_mb: u64 = args.get(2).map_or(Ok(32), |b| b.parse())?;
    let budget = budget_mb * 1_000_000;
    let size = std::fs::metadata(&input)?.len();
    let output = dir.join("sorted.csv");

    println!("\n## Step 1: sort_values([{column:?}]) over {:.1} MB of CSV", size as f64 / MB);
    println!("  budget: {budget_mb} MB; output: {}", output.display());
    let frame = read_csv(input.to_string_lossy().as_ref(), CsvOptions::default())?;
    let sorted = frame.sort_values([column], false)?;
    println!("  {} partitions in, {} ranges out", frame.npartitions(), sorted.npartitions());
    let stats = Arc::new(LastStats::default());
    let scheduler = Scheduler::default().memory_limit(budget).callback_arc(stats.clone());
    let start = Instant::now();
    let rows = sorted.to_csv_on(&output, &scheduler)?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = stats.0.lock().map_err(|_| "stats lock")?.clone().ok_or("no stats")?;
    println!(
        "  {rows} rows sorted and written in {seconds:.2} s; most held at once {:.1} MB; \
         roots held back {} times; spilled {:.1} MB, read back {:.1} MB",
        stats.peak_bytes as f64 / MB,
        stats.roots_deferred,
        stats.spilled_bytes as f64 / MB,
        stats.spill_read_bytes as f64 / MB,
    );
    if let Some(peak) = common::peak_rss_mb() {
        println!("  peak resident memory of the process so far: {peak:.1} MB");
    }

    if args.iter().any(|a| a == "--no-check") {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    println!("\n## Step 2: check the output against the input");
    let (rows_in, sums_in) = fingerprint(&input, budget)?;
    let (rows_out, sums_out) = fingerprint(&output, budget)?;
    println!("  rows: {rows_in} in, {rows_out} out");
    println!("  column sums in:\n{sums_in}\n  column sums out:\n{sums_out}");
    assert_eq!(rows_in, rows_out, "rows were lost or repeated");
    for field in sums_in.to_batch().schema().fields() {
        let sum = |t: &Table| {
            let c = t.column(field.name()).expect("same columns");
            arrow::compute::cast(&c, &DataType::Float64)
                .map(|c| c.as_primitive::<Float64Type>().value(0))
        };
        let (a, b) = (sum(&sums_in)?, sum(&sums_out)?);
        // Float sums in another row order differ only by rounding.
        assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{}: {a} in, {b} out", field.name());
    }
    match first_disorder(&output, column)? {
        None => println!("  {column} is in order on all {rows_out} rows; sums agree"),
        Some(row) => return Err(format!("{column} decreases at data row {row}").into()),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
