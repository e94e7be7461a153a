//! `brisk-core`: the types every layer of Brisk shares.
//!
//! - [`Key`]: a task's identity, a name plus a chunk index, deterministic for
//!   collection ops ([`Key::token`]).
//! - [`Value`]: what flows between tasks — an ndarray [`ArrayChunk`], an Arrow
//!   `RecordBatch`, a [`Scalar`], a list, or an [`Opaque`] local value. Every value
//!   knows its size ([`Value::nbytes`]) and, except opaque ones of unregistered
//!   types ([`register_type`]), has a byte codec
//!   ([`Value::encode`], [`Value::decode`]) used for spilling, and a record-batch
//!   form any Arrow reader can read ([`ipc`]: [`Value::to_batch`],
//!   [`Value::from_batch`]).
//! - [`Op`]: what a task does — plain-data ops ([`OpKind`], found again by name in an
//!   [`OpRegistry`]), closures (local only), calls of registered functions
//!   ([`Call`], rebuilt by name in other processes) and fused chains.
//! - [`Element`]: the element types of chunks (`f64`, `f32`, `i64`, `i32`, `bool`)
//!   with numpy's casting rules.
//! - [`Error`]: errors with the task key, file or value they concern.
//! - [`PendingOutput`]: an output written under a temporary name and moved into
//!   place when complete; [`remove_pending`] removes all in progress (for signal
//!   handlers).
//! - [`text`]: sizes, lists and values as messages show them.
//! - [`note_read`] / [`take_read`]: the input bytes a task read, for progress.
//!
//! This crate runs nothing and starts no threads: the graph lives in `brisk-graph`,
//! execution in `brisk-scheduler`.

mod codec;
mod element;
mod error;
mod function;
mod input;
pub mod ipc;
mod key;
mod op;
mod pending;
pub mod text;
mod value;

pub use element::Element;
pub use error::{BoxError, Error, Result};
pub use function::{Call, CallArg, Fallible, Function, Portable, function_name, register_type};
pub use input::{note_read, take_read};
pub use key::Key;
pub use op::{DataOp, LocalFn, Op, OpKind, OpRegistry};
pub use pending::{PendingOutput, remove_pending};
pub use value::{ArrayChunk, DType, Opaque, Scalar, Value};
