//! `.npy` files: read by chunks ([`from_npy`]) and written chunk by chunk ([`Array::to_npy`]),
//! so neither needs the whole array in memory. Supports C-order files of
//! little-endian `f64`, `f32`, `i64`, `i32` (`<f8`, `<f4`, `<i8`, `<i4`) and `bool`
//! (`|b1`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use brisk_core::{DType, Element, Error as CoreError, Key, Op, OpKind, PendingOutput, Value};
use brisk_graph::{Collection, GraphBuilder, Layer, Task};
use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::array::{Array, from_blocks};
use crate::chunks::Chunks;
use crate::element::{any_dtype, chunk_ref};
use crate::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The layout of an `.npy` file's data.
struct Header {
    dtype: DType,
    shape: Vec<usize>,
    data_offset: u64,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {reason}", path.display()))
}

fn read_header(path: &Path) -> Result<Header> {
    let mut f = File::open(path).map_err(|e| bad(path, format!("cannot open: {e}")))?;
    let mut start = [0u8; 10];
    f.read_exact(&mut start).map_err(|_| bad(path, "too short to be an .npy file"))?;
    if &start[..6] != MAGIC {
        return Err(bad(path, "not an .npy file (the magic string \\x93NUMPY is missing)"));
    }
    let (len, prefix) = match start[6] {
        1 => (u16::from_le_bytes([start[8], start[9]]) as usize, 10),
        2 | 3 => {
            let mut more = [0u8; 2];
            f.read_exact(&mut more).map_err(|_| bad(path, "truncated header"))?;
            (u32::from_le_bytes([start[8], start[9], more[0], more[1]]) as usize, 12)
        }
        v => return Err(bad(path, format!(".npy format version {v} is not supported"))),
    };
    let mut text = vec![0u8; len];
    f.read_exact(&mut text).map_err(|_| bad(path, "truncated header"))?;
    let text = String::from_utf8_lossy(&text);
    let field = |name: &str| -> Result<&str> {
        let at = text
            .find(&format!("'{name}'"))
            .ok_or_else(|| bad(path, format!("header has no '{name}'")))?;
        let rest = &text[at + name.len() + 2..];
        Ok(rest.trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")?;
    let found = descr.split(',').next().unwrap_or(descr).trim();
    let dtype = [f64::NPY_DESCR, f32::NPY_DESCR, i64::NPY_DESCR, i32::NPY_DESCR, bool::NPY_DESCR]
        .iter()
        .zip([DType::F64, DType::F32, DType::I64, DType::I32, DType::Bool])
        .find(|(d, _)| found.trim_matches('\'') == **d)
        .map(|(_, t)| t)
        .ok_or_else(|| {
            bad(
                path,
                format!(
                    "dtype {found} is not supported: save it as one of '<f8', '<f4', '<i8', '<i4', '|b1' (little-endian)"
                ),
            )
        })?;
    if field("fortran_order")?.starts_with("True") {
        return Err(bad(
            path,
            "Fortran-order arrays are not supported: save with np.ascontiguousarray",
        ));
    }
    let shape_text = field("shape")?;
    let inner = shape_text.trim_start_matches('(').split(')').next().unwrap_or("");
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(path, format!("bad shape entry '{s}'"))))
        .collect::<Result<Vec<_>>>()?;
    let data_offset = (prefix + len) as u64;
    let expected = data_offset + (shape.iter().product::<usize>() * dtype.size()) as u64;
    let actual = f.metadata().map_err(|e| bad(path, e))?.len();
    if actual < expected {
        return Err(bad(
            path,
            format!(
                "holds {actual} bytes, but its header promises {expected}: the file is truncated"
            ),
        ));
    }
    Ok(Header { dtype, shape, data_offset })
}

/// Reads an `.npy` file of `f64` lazily, one task per chunk, each reading only its
/// own bytes. A file of another dtype is an error naming it; read it with
/// [`from_npy_as`].
///
/// ```no_run
/// use brisk_array::Axes;
/// use brisk_scheduler::Compute;
/// let x = brisk_array::from_npy("data.npy", &[1_000, 1_000])?;
/// println!("{}", x.std(Axes::all(), 0).compute()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_npy(path: impl AsRef<Path>, chunks: &[usize]) -> Result<Array> {
    from_npy_as::<f64>(path, chunks)
}

/// Reads an `.npy` file of `T` lazily, like [`from_npy`].
///
/// ```no_run
/// use brisk_array::Axes;
/// use brisk_scheduler::Compute;
/// let labels = brisk_array::from_npy_as::<i64>("labels.npy", &[100_000])?;
/// println!("{}", labels.max(Axes::all()).compute()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_npy_as<T: Element>(path: impl AsRef<Path>, chunks: &[usize]) -> Result<Array<T>> {
    let path = path.as_ref();
    let header = read_header(path)?;
    if header.dtype != T::DTYPE {
        let name = |d: DType| d.to_string();
        return Err(bad(
            path,
            format!(
                "holds {} ('{}'), not {}: read it with from_npy_as::<{}>",
                name(header.dtype),
                descr_of(header.dtype),
                name(T::DTYPE),
                name(header.dtype)
            ),
        ));
    }
    let layout = Chunks::regular(&header.shape, chunks)?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let name = brisk_graph::token("from-npy", &(path, &header.shape, &layout, modified));
    let path_text = path.to_string_lossy().into_owned();
    from_blocks(name, &header.shape, layout, |b| {
        Op::data(ReadNpyChunk {
            dtype: T::DTYPE,
            path: path_text.clone(),
            data_offset: header.data_offset,
            global_shape: header.shape.clone(),
            start: b.start.clone(),
            shape: b.shape.clone(),
        })
    })
}

fn descr_of(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => f64::NPY_DESCR,
        DType::F32 => f32::NPY_DESCR,
        DType::I64 => i64::NPY_DESCR,
        DType::I32 => i32::NPY_DESCR,
        DType::Bool => bool::NPY_DESCR,
    }
}

/// Byte offsets (from the start of the data) of each row of a chunk in a C-order file.
fn row_offsets(
    global: &[usize],
    start: &[usize],
    shape: &[usize],
    size: usize,
) -> (Vec<u64>, usize) {
    let (starts, row) = crate::chunks::row_starts(global, start, shape);
    (starts.into_iter().map(|s| s * size as u64).collect(), row)
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadNpyChunk {
    dtype: DType,
    path: String,
    data_offset: u64,
    global_shape: Vec<usize>,
    start: Vec<usize>,
    shape: Vec<usize>,
}

impl OpKind for ReadNpyChunk {
    const NAME: &'static str = "array.read-npy";

    fn projected_bytes(&self) -> Option<u64> {
        let size: u64 = match self.dtype {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::Bool => 1,
        };
        Some(self.shape.iter().product::<usize>() as u64 * size)
    }

    fn run(&self, _inputs: Vec<Value>) -> brisk_core::Result<Value> {
        match self.dtype {
            DType::F64 => self.read::<f64>(),
            DType::F32 => self.read::<f32>(),
            DType::I64 => self.read::<i64>(),
            DType::I32 => self.read::<i32>(),
            DType::Bool => self.read::<bool>(),
        }
    }
}

impl ReadNpyChunk {
    fn read<T: Element>(&self) -> brisk_core::Result<Value> {
        let io = |e: std::io::Error| CoreError::user(format!("{}: {e}", self.path));
        let f = File::open(&self.path).map_err(io)?;
        let size = T::DTYPE.size();
        let (offsets, row) = row_offsets(&self.global_shape, &self.start, &self.shape, size);
        let mut bytes = vec![0u8; row * size];
        let mut data = Vec::with_capacity(offsets.len() * row);
        for off in offsets {
            f.read_exact_at(&mut bytes, self.data_offset + off).map_err(io)?;
            data.extend(bytes.chunks_exact(size).map(T::get_le));
        }
        let a = ArrayD::from_shape_vec(IxDyn(&self.shape), data)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(Value::from(T::into_chunk(a)))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WriteNpyChunk {
    path: String,
    data_offset: u64,
    global_shape: Vec<usize>,
    start: Vec<usize>,
}

impl OpKind for WriteNpyChunk {
    const NAME: &'static str = "array.write-npy";

    fn run(&self, inputs: Vec<Value>) -> brisk_core::Result<Value> {
        let [chunk] = &inputs[..] else {
            return Err(CoreError::Arity {
                op: Self::NAME.into(),
                expected: 1,
                found: inputs.len(),
            });
        };
        any_dtype!(chunk_ref(Self::NAME, chunk)?, a => self.write(a))
    }
}

impl WriteNpyChunk {
    fn write<T: Element>(&self, a: &ArrayD<T>) -> brisk_core::Result<Value> {
        let io = |e: std::io::Error| CoreError::user(format!("{}: {e}", self.path));
        let f = std::fs::OpenOptions::new().write(true).open(&self.path).map_err(io)?;
        let size = T::DTYPE.size();
        let (offsets, row) = row_offsets(&self.global_shape, &self.start, a.shape(), size);
        let values: Vec<T> = a.iter().copied().collect();
        let mut bytes = Vec::with_capacity(row * size);
        for (i, off) in offsets.into_iter().enumerate() {
            bytes.clear();
            values[i * row..(i + 1) * row].iter().for_each(|v| v.put_le(&mut bytes));
            f.write_all_at(&bytes, self.data_offset + off).map_err(io)?;
        }
        Ok(Value::from(a.len() as i64))
    }
}

/// The lazy writes of one array to an `.npy` file: a layer of write tasks on the
/// array's.
struct Store {
    layer: Arc<Layer>,
}

impl Collection for Store {
    type Output = ();

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.layer.add_to(graph);
    }

    fn output_keys(&self) -> Vec<Key> {
        self.layer.keys().cloned().collect()
    }

    fn finish(&self, _values: Vec<Value>) -> brisk_core::Result<()> {
        Ok(())
    }
}

impl<T: Element> Array<T> {
    /// Writes the array to an `.npy` file chunk by chunk on the default scheduler,
    /// so an array larger than memory can be saved. The file is written under a
    /// temporary name beside `path` and renamed when complete; on error nothing is
    /// left behind.
    pub fn to_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        self.to_npy_on(path, brisk_scheduler::default_scheduler())
    }

    /// [`to_npy`](Self::to_npy) on `scheduler`.
    pub fn to_npy_on(
        &self,
        path: impl AsRef<Path>,
        scheduler: &brisk_scheduler::Scheduler,
    ) -> Result<()> {
        let path = path.as_ref();
        // Removed if anything fails (or by a signal handler's remove_pending).
        let (out, _) = PendingOutput::file(path)
            .map_err(|e| bad(path, format!("cannot create a file beside it: {e}")))?;
        self.write_npy(out.path(), scheduler)?;
        out.persist()
            .map_err(|e| bad(path, format!("cannot rename the finished file into place: {e}")))
    }

    fn write_npy(&self, tmp: &Path, scheduler: &brisk_scheduler::Scheduler) -> Result<()> {
        let shape_text = match self.shape() {
            [n] => format!("({n},)"),
            dims => {
                format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", "))
            }
        };
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
            T::NPY_DESCR
        );
        // Pad so the data starts on a 64-byte boundary, ending the header with '\n'.
        let total = 10 + header.len() + 1;
        header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
        header.push('\n');
        let len = u16::try_from(header.len())
            .map_err(|_| bad(tmp, "header too long for .npy version 1"))?;
        let mut f = File::create(tmp).map_err(|e| bad(tmp, format!("cannot create: {e}")))?;
        f.write_all(MAGIC)
            .and_then(|()| f.write_all(&[1, 0]))
            .and_then(|()| f.write_all(&len.to_le_bytes()))
            .and_then(|()| f.write_all(header.as_bytes()))
            .map_err(|e| bad(tmp, e))?;
        let data_offset = (10 + header.len()) as u64;
        let bytes = (self.shape().iter().product::<usize>() * T::DTYPE.size()) as u64;
        f.set_len(data_offset + bytes)
            .map_err(|e| bad(tmp, format!("cannot size the file: {e}")))?;
        drop(f);
        let name = brisk_graph::token("to-npy", &(self.name(), tmp));
        let base = Key::named(name.as_str());
        let path_text = tmp.to_string_lossy().into_owned();
        let tasks = self
            .chunks()
            .blocks()
            .iter()
            .zip(self.output_keys())
            .map(|(b, key)| {
                let op = Op::data(WriteNpyChunk {
                    path: path_text.clone(),
                    data_offset,
                    global_shape: self.shape().to_vec(),
                    start: b.start.clone(),
                });
                Task::new(base.with_index(b.index.clone()), op, [key])
            })
            .collect();
        scheduler.compute(&Store { layer: Layer::new(name, tasks, vec![self.layer()]) })?;
        Ok(())
    }
}
