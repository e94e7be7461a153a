//! What a task does.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::function::{Binder, Call, CallArg, Function, binder, function_name};
use crate::{Error, Key, Result, Value};

/// An op that is plain data: it can be encoded, decoded by its stable name (in this
/// process or another running the same binary) and run. Every op of `brisk-array`
/// and `brisk-frame` is one; only the delayed API's closures are not.
///
/// Implement [`OpKind`] rather than this trait; every `OpKind` is a `DataOp`.
pub trait DataOp: Send + Sync + fmt::Debug + 'static {
    /// The stable name the op is registered under.
    fn name(&self) -> &'static str;
    /// Runs the op on its inputs, in dependency order.
    fn run(&self, inputs: Vec<Value>) -> Result<Value>;
    /// The op's parameters as bytes (MessagePack).
    fn encode_params(&self) -> Result<Vec<u8>>;
    /// `Some(i)` when the op only takes item `i` of its one input, a list (see
    /// [`OpKind::list_item`]).
    fn list_item(&self) -> Option<usize>;
    /// About how many bytes running the op holds at its peak, when known before it
    /// runs (see [`OpKind::projected_bytes`]).
    fn projected_bytes(&self) -> Option<u64>;
}

/// A serde struct or enum that is an op, looked up by [`OpKind::NAME`].
///
/// ```
/// use brisk_core::{Op, OpKind, OpRegistry, Result, Scalar, Value};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct AddConst { c: f64 }
///
/// impl OpKind for AddConst {
///     const NAME: &'static str = "example.add-const";
///     fn run(&self, inputs: Vec<Value>) -> Result<Value> {
///         match inputs[..] {
///             [Value::Scalar(Scalar::F64(x))] => Ok(Value::from(x + self.c)),
///             _ => Err(brisk_core::Error::Internal("add-const takes one f64".into())),
///         }
///     }
/// }
///
/// let op = Op::data(AddConst { c: 2.0 });
/// let mut registry = OpRegistry::new();
/// registry.register::<AddConst>();
/// let shipped = registry.decode(&op.encode()?)?;
/// assert_eq!(shipped.run(vec![Value::from(1.0)])?.as_scalar(), Some(Scalar::F64(3.0)));
/// # Ok::<(), brisk_core::Error>(())
/// ```
pub trait OpKind: Serialize + DeserializeOwned + Send + Sync + fmt::Debug + 'static {
    /// The stable name: unique in the program, unchanged across versions of it.
    const NAME: &'static str;
    /// Runs the op on its inputs, in dependency order.
    fn run(&self, inputs: Vec<Value>) -> Result<Value>;
    /// About how many bytes running the op holds at its peak, when its parameters
    /// tell (a chunk's shape, a byte range to read); `None` when they do not. A
    /// scheduler refuses, before anything runs, a graph with a task whose projection
    /// alone exceeds the memory budget.
    fn projected_bytes(&self) -> Option<u64> {
        None
    }
    /// `Some(i)` when the op only takes item `i` of its one input, a
    /// [`Value::List`]: a scheduler that moves results between processes then
    /// reads that item where a task needs it instead of running the op.
    fn list_item(&self) -> Option<usize> {
        None
    }
}

impl<T: OpKind> DataOp for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        OpKind::run(self, inputs)
    }

    fn projected_bytes(&self) -> Option<u64> {
        OpKind::projected_bytes(self)
    }

    fn list_item(&self) -> Option<usize> {
        OpKind::list_item(self)
    }

    fn encode_params(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self)
            .map_err(|e| Error::Encode { what: format!("op '{}'", T::NAME), reason: e.to_string() })
    }
}

/// The function type of a local (closure) op.
pub type LocalFn = dyn Fn(Vec<Value>) -> Result<Value> + Send + Sync;

/// What a task does.
#[derive(Clone)]
pub enum Op {
    /// A value that is already known.
    Const(Value),
    /// Plain data, runnable anywhere the binary runs.
    Data(Arc<dyn DataOp>),
    /// A closure: runs only on in-process schedulers, unless it is the call of a
    /// registered function (`call`), which other processes rebuild by name.
    Local {
        /// A name for display and error messages.
        name: Arc<str>,
        /// The function.
        f: Arc<LocalFn>,
        /// The call of a registered function this closure makes, if it is one.
        call: Option<Arc<Call>>,
    },
    /// Fused tasks: the first takes the task's inputs, each next one the previous
    /// result. Each step keeps the key of the task it was, so an error or a panic
    /// in it names that task.
    Chain(Arc<[(Key, Op)]>),
}

impl Op {
    /// A data op.
    pub fn data(op: impl DataOp) -> Self {
        Op::Data(Arc::new(op))
    }

    /// A local op from a closure.
    ///
    /// ```
    /// use brisk_core::{Op, Scalar, Value};
    /// let double = Op::local("double", |inputs: Vec<Value>| match inputs[..] {
    ///     [Value::Scalar(Scalar::I64(x))] => Ok(Value::from(2 * x)),
    ///     _ => unreachable!(),
    /// });
    /// assert_eq!(double.run(vec![Value::from(4_i64)]).unwrap().as_scalar(), Some(Scalar::I64(8)));
    /// assert!(double.is_local());
    /// ```
    pub fn local(
        name: impl Into<Arc<str>>,
        f: impl Fn(Vec<Value>) -> Result<Value> + Send + Sync + 'static,
    ) -> Self {
        Op::Local { name: name.into(), f: Arc::new(f), call: None }
    }

    /// The call `call` of a registered function, run here by `f` and in another
    /// process by the function registered under `call.name`
    /// ([`OpRegistry::register_fn`]).
    pub fn call(
        call: Call,
        f: impl Fn(Vec<Value>) -> Result<Value> + Send + Sync + 'static,
    ) -> Self {
        Op::Local { name: Arc::clone(&call.name), f: Arc::new(f), call: Some(Arc::new(call)) }
    }

    /// The op without its registered-function form: a closure that stays in its
    /// process whatever its name.
    pub fn closure(self) -> Self {
        match self {
            Op::Local { name, f, .. } => Op::Local { name, f, call: None },
            op => op,
        }
    }

    /// The names of the registered functions the op calls.
    pub fn functions(&self) -> Vec<&str> {
        match self {
            Op::Local { call: Some(call), .. } => vec![&call.name],
            Op::Chain(steps) => steps.iter().flat_map(|(_, op)| op.functions()).collect(),
            _ => Vec::new(),
        }
    }

    /// The steps run one after the other as one task (flattening nested chains).
    pub fn chain(steps: impl IntoIterator<Item = (Key, Op)>) -> Self {
        let mut flat = Vec::new();
        for (key, op) in steps {
            match op {
                Op::Chain(inner) => flat.extend(inner.iter().cloned()),
                op => flat.push((key, op)),
            }
        }
        if flat.len() == 1 {
            return flat.pop().expect("one step").1;
        }
        Op::Chain(flat.into())
    }

    /// A short name for display: the data op's name, the closure's, or the chain's
    /// names joined by `+`.
    pub fn name(&self) -> String {
        match self {
            Op::Const(v) => format!("const {}", v.kind()),
            Op::Data(d) => d.name().to_string(),
            Op::Local { name, .. } => name.to_string(),
            Op::Chain(steps) => steps.iter().map(|(_, op)| op.name()).collect::<Vec<_>>().join("+"),
        }
    }

    /// About how many bytes the op holds at its peak, when known before it runs
    /// (the largest step's, for a chain).
    pub fn projected_bytes(&self) -> Option<u64> {
        match self {
            Op::Data(d) => d.projected_bytes(),
            Op::Chain(steps) => steps.iter().filter_map(|(_, op)| op.projected_bytes()).max(),
            Op::Const(_) | Op::Local { .. } => None,
        }
    }

    /// `Some(i)` when the op only takes item `i` of its one input, a list.
    pub fn list_item(&self) -> Option<usize> {
        match self {
            Op::Data(d) => d.list_item(),
            _ => None,
        }
    }

    /// Whether the op holds a closure or a value that cannot leave this process
    /// (a call of a registered function can, if its constants can).
    pub fn is_local(&self) -> bool {
        let is_local_value = |v: &Value| matches!(v, Value::Opaque(o) if !o.is_portable());
        match self {
            Op::Local { call: None, .. } => true,
            Op::Local { call: Some(call), .. } => {
                call.args.iter().any(|arg| matches!(arg, CallArg::Const(v) if is_local_value(v)))
            }
            Op::Chain(steps) => steps.iter().any(|(_, op)| op.is_local()),
            Op::Const(v) => is_local_value(v),
            Op::Data(_) => false,
        }
    }

    /// Runs the op.
    pub fn run(&self, inputs: Vec<Value>) -> Result<Value> {
        match self {
            Op::Const(v) => Ok(v.clone()),
            Op::Data(d) => d.run(inputs),
            Op::Local { f, .. } => f(inputs),
            Op::Chain(steps) => {
                let run_step = |(key, op): &(Key, Op), inputs| match std::panic::catch_unwind(
                    std::panic::AssertUnwindSafe(|| op.run(inputs)),
                ) {
                    Ok(result) => result.map_err(|e| e.in_task(key)),
                    Err(payload) => Err(Error::from_panic(key, payload.as_ref())),
                };
                let (first, rest) =
                    steps.split_first().ok_or_else(|| Error::Internal("empty op chain".into()))?;
                rest.iter()
                    .try_fold(run_step(first, inputs)?, |acc, step| run_step(step, vec![acc]))
            }
        }
    }

    /// Encodes the op as bytes (MessagePack); a closure is refused with its name.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let wire = self.to_wire()?;
        rmp_serde::to_vec(&wire).map_err(|e| Error::Encode {
            what: format!("op '{}'", self.name()),
            reason: e.to_string(),
        })
    }

    fn to_wire(&self) -> Result<Wire> {
        Ok(match self {
            Op::Const(v) => Wire::Const(v.encode()?),
            Op::Data(d) => Wire::Data { name: d.name().to_string(), params: d.encode_params()? },
            Op::Local { call: Some(call), .. } => Wire::Fn {
                name: call.name.to_string(),
                args: call
                    .args
                    .iter()
                    .map(|arg| {
                        Ok(match arg {
                            CallArg::Input => WireArg::Input,
                            CallArg::Inputs(n) => WireArg::Inputs(*n as u64),
                            CallArg::Const(v) => WireArg::Const(v.encode()?),
                        })
                    })
                    .collect::<Result<_>>()?,
            },
            Op::Local { name, call: None, .. } => {
                return Err(Error::Encode {
                    what: format!("closure op '{name}'"),
                    reason: "closures run only on in-process schedulers (threads, sync)".into(),
                });
            }
            Op::Chain(steps) => Wire::Chain(
                steps
                    .iter()
                    .map(|(key, op)| {
                        Ok((key.name().to_string(), key.index().to_vec(), op.to_wire()?))
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Op({})", self.name())
    }
}

/// An op as it travels between processes.
#[derive(Serialize, Deserialize)]
enum Wire {
    Const(#[serde(with = "serde_bytes")] Vec<u8>),
    Data {
        name: String,
        #[serde(with = "serde_bytes")]
        params: Vec<u8>,
    },
    Chain(Vec<(String, Vec<u32>, Wire)>),
    Fn {
        name: String,
        args: Vec<WireArg>,
    },
}

/// An argument of a registered function's call as it travels.
#[derive(Serialize, Deserialize)]
enum WireArg {
    Input,
    Inputs(u64),
    Const(#[serde(with = "serde_bytes")] Vec<u8>),
}

type Decoder = fn(&[u8]) -> Result<Arc<dyn DataOp>>;

/// Maps stable op names to their decoders, so encoded ops can be rebuilt (by this
/// process or another running the same binary).
#[derive(Default)]
pub struct OpRegistry {
    decoders: HashMap<&'static str, Decoder>,
    functions: HashMap<String, Binder>,
}

impl OpRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `T` decodable by its [`OpKind::NAME`].
    pub fn register<T: OpKind>(&mut self) -> &mut Self {
        fn decode<T: OpKind>(bytes: &[u8]) -> Result<Arc<dyn DataOp>> {
            let op: T = rmp_serde::from_slice(bytes).map_err(|e| Error::Decode {
                what: "op parameters",
                reason: format!("{}: {e}", T::NAME),
            })?;
            Ok(Arc::new(op))
        }
        self.decoders.insert(T::NAME, decode::<T>);
        self
    }

    /// Makes calls of `f` under `name` (see [`function_name`]) rebuildable: the
    /// remote side of `delayed!(f(..))`, whose calls then run in worker processes.
    /// Also registers the codecs of `f`'s argument and result types in this
    /// process ([`register_type`](crate::register_type)). Wrap a function returning
    /// a `Result` in [`Fallible`](crate::Fallible). The `register_fn!` macro of
    /// `brisk-graph` names the function as `delayed!` does.
    ///
    /// A later registration under the same name replaces the earlier one.
    pub fn register_fn<Args, F: Function<Args>>(&mut self, name: &str, f: F) -> &mut Self {
        self.functions.insert(function_name(name), binder(f));
        self
    }

    /// Whether a function is registered under `name`.
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// The names of the ops and functions (as `fn NAME`) it can decode, sorted:
    /// what two processes compare before they exchange ops (a name one lacks is an
    /// op it cannot run).
    pub fn names(&self) -> Vec<String> {
        let ops = self.decoders.keys().map(|name| name.to_string());
        let functions = self.functions.keys().map(|name| format!("fn {name}"));
        let mut names: Vec<String> = ops.chain(functions).collect();
        names.sort_unstable();
        names
    }

    /// Rebuilds an op from the bytes of [`Op::encode`].
    pub fn decode(&self, bytes: &[u8]) -> Result<Op> {
        let wire: Wire = rmp_serde::from_slice(bytes)
            .map_err(|e| Error::Decode { what: "op", reason: e.to_string() })?;
        self.op_of_wire(wire)
    }

    fn op_of_wire(&self, wire: Wire) -> Result<Op> {
        Ok(match wire {
            Wire::Const(bytes) => Op::Const(Value::decode(&bytes)?),
            Wire::Data { name, params } => {
                let decode = self.decoders.get(name.as_str()).ok_or(Error::UnknownOp { name })?;
                Op::Data(decode(&params)?)
            }
            Wire::Chain(steps) => Op::Chain(
                steps
                    .into_iter()
                    .map(|(name, index, w)| Ok((Key::new(name, index), self.op_of_wire(w)?)))
                    .collect::<Result<Vec<_>>>()?
                    .into(),
            ),
            Wire::Fn { name, args } => {
                let bind = self
                    .functions
                    .get(&name)
                    .ok_or_else(|| Error::UnknownFunction { name: name.clone() })?;
                let args = args
                    .into_iter()
                    .map(|arg| {
                        Ok(match arg {
                            WireArg::Input => CallArg::Input,
                            WireArg::Inputs(n) => CallArg::Inputs(n as usize),
                            WireArg::Const(bytes) => CallArg::Const(Value::decode(&bytes)?),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let call = Call { name: name.into(), args };
                let f = bind(call.clone())?;
                Op::Local { name: Arc::clone(&call.name), f, call: Some(Arc::new(call)) }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scalar;

    #[derive(Debug, Serialize, Deserialize)]
    struct Scale {
        by: i64,
    }

    impl OpKind for Scale {
        const NAME: &'static str = "test.scale";
        fn run(&self, inputs: Vec<Value>) -> Result<Value> {
            match inputs[..] {
                [Value::Scalar(Scalar::I64(x))] => Ok(Value::from(x * self.by)),
                _ => Err(Error::Arity { op: Self::NAME.into(), expected: 1, found: inputs.len() }),
            }
        }
    }

    #[test]
    fn chains_roundtrip_through_the_registry_and_run_in_order() {
        let op = Op::chain([
            (Key::named("a"), Op::data(Scale { by: 3 })),
            (Key::named("b"), Op::chain([(Key::named("b"), Op::data(Scale { by: -2 }))])),
        ]);
        assert_eq!(op.name(), "test.scale+test.scale");
        let mut reg = OpRegistry::new();
        reg.register::<Scale>();
        let back = reg.decode(&op.encode().unwrap()).unwrap();
        assert_eq!(back.run(vec![Value::from(5_i64)]).unwrap().as_scalar(), Some(Scalar::I64(-30)));
    }

    #[test]
    fn a_failing_or_panicking_step_names_its_own_key() {
        let fail = Op::local("fail", |_| Err(Error::user("no")));
        let boom = Op::local("boom", |_| panic!("boom"));
        let ok = || Op::data(Scale { by: 1 });
        let chain = |bad: Op| {
            Op::chain([(Key::named("a"), ok()), (Key::named("b"), bad), (Key::named("c"), ok())])
        };
        let err = chain(fail).run(vec![Value::from(1_i64)]).unwrap_err();
        assert_eq!(err.to_string(), "task 'b' failed: no");
        let err = chain(boom).run(vec![Value::from(1_i64)]).unwrap_err();
        assert_eq!(err.to_string(), "task 'b' panicked: boom");
    }

    #[test]
    fn unknown_op_names_are_reported() {
        let bytes = Op::data(Scale { by: 1 }).encode().unwrap();
        let err = OpRegistry::new().decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("unknown op 'test.scale'"), "{err}");
    }

    #[test]
    fn closures_are_refused_by_name_even_inside_chains() {
        let op = Op::chain([
            (Key::named("a"), Op::data(Scale { by: 1 })),
            (Key::named("b"), Op::local("my-closure", |v| Ok(v[0].clone()))),
        ]);
        assert!(op.is_local());
        let err = op.encode().unwrap_err();
        assert!(err.to_string().contains("my-closure"), "{err}");
    }
}
