//! Writing results: a table on a terminal, CSV when piped, JSON or Parquet on
//! request; `-o FILE` is written under a temporary name and renamed when complete.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use brisk::core::PendingOutput;
use brisk::frame::Table;
use clap::{Args, ValueEnum};

use crate::failure::Failure;
use crate::input::Input;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// An aligned table (the default on a terminal).
    Table,
    /// CSV with a header row (the default when piped).
    Csv,
    /// A JSON array with one object per row.
    Json,
    /// Parquet (needs -o).
    Parquet,
}

/// Where and how to write the result.
#[derive(Args)]
pub(crate) struct Output {
    /// table, csv, json or parquet (default: table on a terminal, csv when piped,
    /// or by the extension of -o).
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<Format>,
    /// Write to this file instead of standard output, under a temporary name
    /// renamed when complete (nothing is left behind on failure); or to an
    /// object-store URL (`s3://bucket/result.parquet`), uploaded when complete.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    path: Option<PathBuf>,
}

/// Prints one line (or several) to standard output; a closed pipe is not an error.
pub(crate) fn print_line(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Where `-o PATH` really writes, and whether it goes through a temporary name: a
/// symlink's target (so the link stays a link), and a device or FIFO written
/// directly (renaming a file over `/dev/null` would replace the device).
fn destination(path: &Path) -> (PathBuf, bool) {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let target = if is_link {
        std::fs::canonicalize(path).unwrap_or_else(|_| {
            // A dangling link: its target, taken beside the link.
            let to = std::fs::read_link(path).unwrap_or_else(|_| path.to_path_buf());
            path.parent().map_or(to.clone(), |dir| dir.join(&to))
        })
    } else {
        path.to_path_buf()
    };
    let special = std::fs::metadata(&target).is_ok_and(|m| !m.is_file() && !m.is_dir());
    (target, special)
}

impl Output {
    fn format(&self) -> Format {
        if let Some(f) = self.format {
            return f;
        }
        match &self.path {
            Some(p) => {
                let lower = p.to_string_lossy().to_ascii_lowercase();
                if lower.ends_with(".json") {
                    Format::Json
                } else if lower.ends_with(".parquet") {
                    Format::Parquet
                } else if lower.ends_with(".txt") {
                    Format::Table
                } else {
                    Format::Csv
                }
            }
            None if std::io::stdout().is_terminal() => Format::Table,
            None => Format::Csv,
        }
    }

    /// The object-store URL of `-o`, if it names one.
    fn url(&self) -> Option<&str> {
        self.path.as_deref().and_then(|p| p.to_str()).filter(|p| brisk::frame::is_url(p))
    }

    /// Fails before any work when the output cannot be written.
    pub(crate) fn check(&self) -> Result<(), Failure> {
        if self.format() == Format::Parquet && self.path.is_none() {
            return Err(Failure::User("--format parquet needs -o FILE".into()));
        }
        if let Some(url) = self.url() {
            // The store is reached when the result is uploaded.
            if url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("file://")) {
                return Err(Failure::User(format!(
                    "-o {url}: write a local path, not a file:// URL"
                )));
            }
            return Ok(());
        }
        if let Some(path) = &self.path {
            if path.is_dir() {
                return Err(Failure::User(format!("-o {}: is a directory", path.display())));
            }
            let (target, special) = destination(path);
            if special {
                return Ok(());
            }
            let path = &target;
            // Create and remove a temporary file: a missing or read-only
            // directory fails now, not after the computation.
            PendingOutput::file(path)
                .map_err(|e| Failure::User(format!("-o {}: cannot write: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Writes the table (to an object store with `input`'s settings).
    pub(crate) fn write(&self, table: &Table, input: &Input) -> Result<(), Failure> {
        self.check()?;
        let format = self.format();
        if let Some(url) = self.url() {
            // Written whole into a pending file under TMPDIR (removed when done
            // and on an interrupt), then uploaded.
            let staging = std::env::temp_dir().join(format!("brisk-output-{}", std::process::id()));
            let written =
                PendingOutput::file(&staging).map_err(Failure::from).and_then(|(out, mut f)| {
                    write_file(table, format, &mut f)?;
                    brisk::frame::upload_file(out.path(), url, &input.storage())?;
                    Ok(())
                });
            return written.map_err(|e| e.context(&format!("-o {url}")));
        }
        let Some(path) = &self.path else {
            // Only a table on a terminal is a preview; piped, every row is written.
            let preview = std::io::stdout().is_terminal();
            let mut out = BufWriter::new(std::io::stdout().lock());
            encode(table, format, preview, &mut out)?;
            out.flush()?;
            return Ok(());
        };
        let (target, special) = destination(path);
        if special {
            // A device or a FIFO: written in place, as a shell redirection would.
            let written = File::options()
                .write(true)
                .open(&target)
                .map_err(Failure::from)
                .and_then(|mut f| write_file(table, format, &mut f));
            return written.map_err(|e| e.context(&format!("-o {}", path.display())));
        }
        // Written under a temporary name, removed unless complete (and by the
        // interrupt handler).
        let written =
            PendingOutput::file(&target).map_err(Failure::from).and_then(|(out, mut f)| {
                write_file(table, format, &mut f)?;
                f.sync_all()?;
                Ok(out.persist()?)
            });
        written.map_err(|e| e.context(&format!("-o {}", path.display())))
    }
}

/// Writes the whole table into `file` in `format`, flushed.
fn write_file(table: &Table, format: Format, file: &mut File) -> Result<(), Failure> {
    if format == Format::Parquet {
        return encode_parquet(table, file);
    }
    let mut out = BufWriter::new(file);
    encode(table, format, false, &mut out)?;
    Ok(out.flush()?)
}

fn arrow_failure(e: arrow::error::ArrowError) -> Failure {
    use arrow::error::ArrowError;
    match e {
        ArrowError::IoError(_, io) => io.into(),
        // The CSV writer passes write errors on as text.
        other if other.to_string().contains("Broken pipe") => Failure::BrokenPipe,
        // Writing valid batches fails only where the output does (a full disk, a
        // closed device): the user's to fix, not a bug.
        ArrowError::CsvError(text) | ArrowError::JsonError(text) => {
            Failure::User(format!("cannot write: {text}"))
        }
        other => Failure::Internal(other.to_string()),
    }
}

/// Encodes the table in `format` onto `out`; a `preview` table shows only its first
/// and last rows (for a terminal), any other table every row.
fn encode<W: Write>(
    table: &Table,
    format: Format,
    preview: bool,
    out: &mut W,
) -> Result<(), Failure> {
    let batches: Vec<&RecordBatch> = table.batches().iter().collect();
    match format {
        Format::Table if preview => writeln!(out, "{table}")?,
        Format::Table => {
            let empty = [RecordBatch::new_empty(table.schema().clone())];
            let all = if table.batches().is_empty() { &empty[..] } else { table.batches() };
            let text = arrow::util::pretty::pretty_format_batches(all).map_err(arrow_failure)?;
            writeln!(out, "{text}")?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(table.schema().clone())).map_err(arrow_failure)?;
            }
            for b in batches {
                w.write(b).map_err(arrow_failure)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut *out);
            w.write_batches(&batches).map_err(arrow_failure)?;
            w.finish().map_err(arrow_failure)?;
            drop(w);
            writeln!(out)?;
        }
        Format::Parquet => {
            return Err(Failure::User("--format parquet needs -o FILE".into()));
        }
    }
    Ok(())
}

/// Writes the table as one Parquet file.
fn encode_parquet(table: &Table, file: &mut File) -> Result<(), Failure> {
    let parquet_failure = |e: parquet::errors::ParquetError| match e {
        parquet::errors::ParquetError::External(inner) => Failure::User(inner.to_string()),
        other => Failure::Internal(other.to_string()),
    };
    let mut w =
        brisk::frame::ParquetSink::try_new(file, table.schema()).map_err(parquet_failure)?;
    for b in table.batches() {
        w.write(b).map_err(parquet_failure)?;
    }
    w.close().map_err(parquet_failure)?;
    Ok(())
}
