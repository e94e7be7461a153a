//! The input files and how to read them.

use std::path::PathBuf;

use brisk::frame::arrow::datatypes::{DataType, TimeUnit};
use brisk::frame::{CsvOptions, Frame, Sources, StorageOptions, read_csv, read_parquet};
use clap::Args;

use crate::failure::Failure;

const CSV_ENDINGS: &[&str] = &[".csv", ".csv.gz", ".csv.zst"];
const PARQUET_ENDINGS: &[&str] = &[".parquet", ".pq"];

/// Where to read and how.
#[derive(Args)]
pub(crate) struct Input {
    /// Files, directories or globs: `data.csv`, `data/`, `'data/*.csv'`; CSV files
    /// may be gzip (`.csv.gz`) or zstd (`.csv.zst`) compressed; `.parquet` files are
    /// read as Parquet. Object-store URLs too: `s3://bucket/2026/*.csv`, `gs://`,
    /// `az://` (`abfs://`), `http(s)://`, `file://`, with credentials and endpoints
    /// from the cloud's environment variables (AWS_*, GOOGLE_*, AZURE_*) and
    /// --storage-option.
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<String>,
    /// A setting of the object stores read and written (repeatable), over the
    /// environment: `--storage-option endpoint=http://127.0.0.1:9000`,
    /// `region=eu-west-1`, `anon=true` (public data, no credentials); the keys of
    /// the object_store crate (aws_*, google_*, azure_*).
    #[arg(long = "storage-option", value_name = "KEY=VALUE", value_parser = parse_option)]
    storage_options: Vec<(String, String)>,
    /// Bytes per partition of a CSV file (of its decompressed bytes for a `.gz` or `.zst`
    /// file): `4MB`, `64MiB` (default 4 MiB; 16 MiB for object-store URLs).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    blocksize: Option<u64>,
    /// The CSV field delimiter (one ASCII character; `\t` for tabs).
    #[arg(long, value_name = "C", default_value = ",", value_parser = parse_delimiter)]
    delimiter: u8,
    /// The CSV files have no header row: columns are named column_1, column_2, ...
    #[arg(long)]
    no_header: bool,
    /// Read a column as a type instead of the inferred one (repeatable):
    /// `--dtype id4:str --dtype v1:float`. Types: str, int, float, bool, date, datetime.
    #[arg(long = "dtype", value_name = "COL:TYPE")]
    dtypes: Vec<String>,
    /// A CSV value that means null (repeatable): `--null NA --null -`. The empty
    /// field is always null.
    #[arg(long = "null", value_name = "VALUE")]
    nulls: Vec<String>,
    /// The frame once opened: `--explain` asks for its partitions again, and a
    /// compressed file's size is counted by decoding it.
    #[arg(skip)]
    opened: std::cell::OnceCell<Frame>,
}

/// `4MB`, `64MiB`, `1.5GB`, `4096` (bytes); decimal and binary units.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a size (examples: 4MB, 64MiB, 2GiB, 4096)"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        other => {
            return Err(format!("unknown size unit '{other}' (use B, KB, MB, GB, KiB, MiB, GiB)"));
        }
    };
    let bytes = value * scale;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("'{text}' is not a positive size"));
    }
    Ok(bytes as u64)
}

/// The command line as shown in a report: the values of secret storage options
/// (keys, tokens, passwords) left out.
pub(crate) fn shown_args(args: impl Iterator<Item = String>) -> String {
    let secret = |k: &str| {
        let k = k.to_ascii_lowercase();
        ["secret", "key", "token", "password", "sas", "credential"].iter().any(|s| k.contains(s))
    };
    let mut option_next = false;
    let shown: Vec<String> = args
        .map(|arg| {
            let (is_option, value) = match arg.strip_prefix("--storage-option=") {
                Some(v) => (true, v.to_string()),
                None => (option_next, arg.clone()),
            };
            option_next = arg == "--storage-option";
            match value.split_once('=') {
                Some((k, _)) if is_option && secret(k) => {
                    let shown = format!("{k}=***");
                    if arg.starts_with("--storage-option=") {
                        format!("--storage-option={shown}")
                    } else {
                        shown
                    }
                }
                _ => arg,
            }
        })
        .collect();
    shown.join(" ")
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE (for example endpoint=http://127.0.0.1:9000)")),
    }
}

fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "tab" => Ok(b'\t'),
        t if t.len() == 1 && t.is_ascii() => Ok(t.as_bytes()[0]),
        _ => Err(format!("'{text}' is not one ASCII character")),
    }
}

fn parse_type(column: &str, name: &str) -> Result<DataType, Failure> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "str" | "string" | "text" | "utf8" => DataType::Utf8,
        "int" | "int64" | "integer" | "i64" => DataType::Int64,
        "float" | "float64" | "double" | "f64" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        "datetime" | "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, None),
        other => {
            return Err(Failure::User(format!(
                "--dtype {column}:{other}: unknown type; use str, int, float, bool, date or datetime"
            )));
        }
    })
}

impl Input {
    fn sources(&self) -> Sources {
        Sources::from(self.paths.clone()).storage_options(self.storage())
    }

    /// The object stores' settings given.
    pub(crate) fn storage(&self) -> StorageOptions {
        self.storage_options.iter().cloned().collect()
    }

    /// Whether the input is Parquet: every path (or glob) names `.parquet` files,
    /// or is a directory of Parquet files and no CSV files.
    fn is_parquet(&self) -> bool {
        self.paths.iter().all(|p| {
            let lower = p.to_ascii_lowercase();
            if PARQUET_ENDINGS.iter().any(|e| lower.ends_with(e)) {
                return true;
            }
            let one = Sources::from(p.as_str()).storage_options(self.storage());
            (std::path::Path::new(p).is_dir() || p.ends_with('/'))
                && one.files(PARQUET_ENDINGS).is_ok()
                && one.files(CSV_ENDINGS).is_err()
        })
    }

    /// The files read, and their total size on disk (the progress bar's total,
    /// `--explain`'s input line).
    pub(crate) fn files(&self) -> (Vec<PathBuf>, u64) {
        let endings = if self.is_parquet() { PARQUET_ENDINGS } else { CSV_ENDINGS };
        let sources = self.sources();
        let files = sources.files(endings).unwrap_or_default();
        let bytes = files.iter().filter_map(|f| sources.size_of(f)).sum();
        (files, bytes)
    }

    /// The lazy frame over the input (built once).
    pub(crate) fn open(&self) -> Result<Frame, Failure> {
        if let Some(frame) = self.opened.get() {
            return Ok(frame.clone());
        }
        let frame = self.read()?;
        Ok(self.opened.get_or_init(|| frame).clone())
    }

    fn read(&self) -> Result<Frame, Failure> {
        if self.paths.iter().any(|p| p == "-") && !std::path::Path::new("-").exists() {
            // Blocks are read in parallel by offset, which a pipe cannot give.
            return Err(Failure::User(
                "'-' (standard input) cannot be read: blocks are read in parallel by offset; save the data to a file and pass its path (or ./- for a file named '-')".into(),
            ));
        }
        if self.is_parquet() {
            return Ok(read_parquet(self.sources(), None)?);
        }
        let mut opts = CsvOptions::default().delimiter(self.delimiter).header(!self.no_header);
        if let Some(b) = self.blocksize {
            opts = opts.blocksize(b);
        }
        for spec in &self.dtypes {
            let (column, name) = spec.split_once(':').ok_or_else(|| {
                Failure::User(format!("--dtype '{spec}' is not COL:TYPE (for example id4:str)"))
            })?;
            opts = opts.dtype(column.trim(), parse_type(column, name)?);
        }
        if !self.nulls.is_empty() {
            opts = opts.null_values(self.nulls.clone());
        }
        Ok(read_csv(self.sources(), opts)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_storage_options_are_not_shown() {
        let args = ["groupby", "s3://b/k.csv", "--storage-option", "secret_access_key=hunter2"];
        let args = args.iter().map(|s| s.to_string()).chain(["--storage-option=region=eu".into()]);
        let shown = shown_args(args.chain(["--storage-option=aws_session_token=t0k".into()]));
        assert_eq!(
            shown,
            "groupby s3://b/k.csv --storage-option secret_access_key=*** --storage-option=region=eu --storage-option=aws_session_token=***"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4MB"), Ok(4_000_000));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-4MB").is_err());
    }
}
