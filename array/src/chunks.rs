//! Chunk layouts: how an array's shape is cut into blocks.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The sizes of the chunks along each axis; every axis's sizes sum to the shape.
///
/// ```
/// use brisk_array::Chunks;
/// let c = Chunks::regular(&[10, 7], &[4, 7])?;
/// assert_eq!(c.sizes(), &[vec![4, 4, 2], vec![7]]);
/// assert_eq!(c.grid(), vec![3, 1]);
/// assert!(Chunks::explicit(&[10], vec![vec![4, 5]]).is_err());
/// # Ok::<(), brisk_array::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Chunks {
    sizes: Vec<Vec<usize>>,
}

impl Chunks {
    /// Regular chunks of `chunk` along each axis (the last chunk of an axis may be
    /// smaller). A chunk size of zero, or a rank that differs from the shape's, is an
    /// error naming both shapes.
    pub fn regular(shape: &[usize], chunk: &[usize]) -> Result<Self> {
        if shape.len() != chunk.len() || chunk.contains(&0) {
            return Err(Error::BadChunks {
                shape: shape.to_vec(),
                chunks: format!("{chunk:?}"),
                reason: if chunk.contains(&0) {
                    "chunk sizes must be at least 1".into()
                } else {
                    format!("the shape has {} axes, the chunks {}", shape.len(), chunk.len())
                },
            });
        }
        let sizes = shape
            .iter()
            .zip(chunk)
            .map(|(&n, &c)| {
                let mut axis = vec![c; n / c];
                if n % c != 0 {
                    axis.push(n % c);
                }
                if axis.is_empty() {
                    axis.push(0);
                }
                axis
            })
            .collect();
        Ok(Self { sizes })
    }

    /// Explicit chunk sizes per axis, as in Dask's `chunks=((4, 6), (7,))`.
    pub fn explicit(shape: &[usize], sizes: Vec<Vec<usize>>) -> Result<Self> {
        let bad = |reason: String| Error::BadChunks {
            shape: shape.to_vec(),
            chunks: format!("{sizes:?}"),
            reason,
        };
        if shape.len() != sizes.len() {
            return Err(bad(format!(
                "the shape has {} axes, the chunks {}",
                shape.len(),
                sizes.len()
            )));
        }
        for (axis, (&n, s)) in shape.iter().zip(&sizes).enumerate() {
            if s.iter().sum::<usize>() != n {
                return Err(bad(format!(
                    "axis {axis}: chunk sizes sum to {}, not {n}",
                    s.iter().sum::<usize>()
                )));
            }
            if s.is_empty() || (n > 0 && s.contains(&0)) {
                return Err(bad(format!("axis {axis}: every chunk needs at least one element")));
            }
        }
        Ok(Self { sizes })
    }

    /// The chunk sizes along each axis.
    pub fn sizes(&self) -> &[Vec<usize>] {
        &self.sizes
    }

    /// The number of chunks along each axis.
    pub fn grid(&self) -> Vec<usize> {
        self.sizes.iter().map(Vec::len).collect()
    }

    /// The total number of chunks.
    pub fn count(&self) -> usize {
        self.sizes.iter().map(Vec::len).product()
    }

    /// Every chunk in row-major order: its grid index, its first element's global
    /// index and its shape.
    pub(crate) fn blocks(&self) -> Vec<Block> {
        let starts: Vec<Vec<usize>> = self
            .sizes
            .iter()
            .map(|axis| {
                axis.iter()
                    .scan(0, |at, &s| {
                        let start = *at;
                        *at += s;
                        Some(start)
                    })
                    .collect()
            })
            .collect();
        let mut blocks = Vec::with_capacity(self.count());
        let grid = self.grid();
        let mut index = vec![0usize; grid.len()];
        for _ in 0..self.count() {
            blocks.push(Block {
                index: index.iter().map(|&i| i as u32).collect(),
                start: index.iter().enumerate().map(|(a, &i)| starts[a][i]).collect(),
                shape: index.iter().enumerate().map(|(a, &i)| self.sizes[a][i]).collect(),
            });
            for axis in (0..grid.len()).rev() {
                index[axis] += 1;
                if index[axis] < grid[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        blocks
    }
}

/// One chunk of a layout.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub(crate) index: Vec<u32>,
    pub(crate) start: Vec<usize>,
    pub(crate) shape: Vec<usize>,
}

/// The row-major global index of the first element of each row (run along the last
/// axis) of the block at `start` with `shape` inside an array of shape `global`, in
/// the block's row-major order, and the row length. A 0-d block is one row of one.
pub(crate) fn row_starts(global: &[usize], start: &[usize], shape: &[usize]) -> (Vec<u64>, usize) {
    let ndim = shape.len();
    if ndim == 0 {
        return (vec![0], 1);
    }
    let mut strides = vec![1u64; ndim];
    for a in (0..ndim - 1).rev() {
        strides[a] = strides[a + 1] * global[a + 1] as u64;
    }
    let row = shape[ndim - 1];
    let rows = shape.iter().product::<usize>().checked_div(row).unwrap_or(0);
    let starts = (0..rows)
        .map(|r| {
            let mut rest = r;
            let mut at = start[ndim - 1] as u64;
            for a in (0..ndim - 1).rev() {
                at += (start[a] + rest % shape[a]) as u64 * strides[a];
                rest /= shape[a];
            }
            at
        })
        .collect();
    (starts, row)
}

/// The row-major position of a block index in a grid.
pub(crate) fn linear(index: &[usize], grid: &[usize]) -> usize {
    index.iter().zip(grid).fold(0, |acc, (&i, &g)| acc * g + i)
}
