//! Dask's `delayed` in Rust: lazy values from plain functions and closures.
//!
//! ```
//! use brisk_graph::delayed;
//!
//! fn square(x: i64) -> i64 { x * x }
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! let a = delayed!(square(2));
//! let b = delayed!(square(3));
//! let total = delayed!(add(a, b));   // arguments: plain values or other delayed values
//! assert_eq!(total.graph_len(), 3);  // nothing has run yet
//! ```
//!
//! Computing needs a scheduler: `brisk::compute(&total)` or, with the prelude,
//! `total.compute()` (see the `brisk` crate). Building is linear in the number of
//! calls: each call adds one node that points at its inputs, and the graph is
//! collected once, when it is computed.
//!
//! Keys are unique per call (like Dask's default `pure=False`): two calls of the same
//! function are two tasks, while one delayed value used twice is one task.

use std::any::type_name;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use brisk_core::Fallible;
use brisk_core::{BoxError, Call, CallArg, Error, Key, Op, Opaque, Value};

use crate::{Collection, GraphBuilder, Task};

/// What a delayed value may hold: anything clonable that can cross threads.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// One node of a delayed graph: a task plus its inputs.
struct Node {
    key: Key,
    op: Op,
    deps: Vec<Arc<Node>>,
}

impl Drop for Node {
    /// Drops long chains iteratively: the default recursive drop of a million-long
    /// chain of `Arc<Node>` would overflow the stack.
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.deps);
        while let Some(dep) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(dep) {
                stack.append(&mut node.deps);
            }
        }
    }
}

/// A lazy value of type `T`: the result of a function call that has not run yet.
///
/// Cloning is cheap and the clone is the same task.
pub struct Delayed<T> {
    node: Arc<Node>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Self { node: Arc::clone(&self.node), _type: PhantomData }
    }
}

impl<T> std::fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delayed<{}>({})", type_name::<T>(), self.node.key)
    }
}

fn next_key(name: &str) -> Key {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    Key::named(format!("{name}-{n:x}"))
}

impl<T: Data> Delayed<T> {
    /// A delayed value that is already known (Dask's `delayed(x)`).
    ///
    /// ```
    /// use brisk_graph::delayed::Delayed;
    /// let x = Delayed::value(vec![1, 2, 3]);
    /// assert!(x.key().name().starts_with("value-"));
    /// ```
    pub fn value(value: T) -> Self {
        Self::from_parts(
            next_key("value"),
            Op::Const(Value::Opaque(Opaque::new(value))),
            Vec::new(),
        )
    }

    fn from_parts(key: Key, op: Op, deps: Vec<Arc<Node>>) -> Self {
        Self { node: Arc::new(Node { key, op, deps }), _type: PhantomData }
    }

    /// The task's key.
    pub fn key(&self) -> &Key {
        &self.node.key
    }

    /// The number of tasks in this value's graph (shared inputs counted once).
    pub fn graph_len(&self) -> usize {
        let mut b = GraphBuilder::new();
        self.add_tasks(&mut b);
        b.finish().map(|g| g.len()).unwrap_or(0)
    }

    /// A delayed call of `f` on this value (`x.map(f)` is `delayed!(f(x))`).
    ///
    /// ```
    /// use brisk_graph::delayed::Delayed;
    /// let doubled = Delayed::value(21_i64).map(|x| 2 * x);
    /// assert!(doubled.key().name().starts_with("map-"));
    /// ```
    pub fn map<R: Data>(&self, f: impl Fn(T) -> R + Send + Sync + 'static) -> Delayed<R> {
        let call = call1("map", f, self);
        // A closure, whatever its name: never taken for a registered function.
        let node = Node {
            key: call.node.key.clone(),
            op: call.node.op.clone().closure(),
            deps: call.node.deps.clone(),
        };
        Delayed { node: Arc::new(node), _type: PhantomData }
    }
}

impl<T: Data> Collection for Delayed<T> {
    type Output = T;

    fn add_tasks(&self, graph: &mut GraphBuilder) {
        let mut stack: Vec<&Arc<Node>> = vec![&self.node];
        while let Some(node) = stack.pop() {
            if graph.contains(&node.key) {
                continue;
            }
            let deps = node.deps.iter().map(|d| d.key.clone()).collect();
            graph.insert(Task { key: node.key.clone(), op: node.op.clone(), deps });
            stack.extend(node.deps.iter());
        }
    }

    fn output_keys(&self) -> Vec<Key> {
        vec![self.node.key.clone()]
    }

    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<T> {
        let value = values
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("delayed output missing".into()))?;
        value.take_opaque()
    }
}

type Make<T> = Box<dyn Fn(&mut std::vec::IntoIter<Value>) -> brisk_core::Result<T> + Send + Sync>;

/// One argument of a delayed call: a plain value, a delayed value, or a vector of
/// delayed values (each an input of the task, like a list of delayed values in Dask).
pub struct Arg<T> {
    deps: Vec<Arc<Node>>,
    make: Make<T>,
    form: CallArg,
}

/// Converts call arguments into [`Arg`]s; see [`Arg`] for what is accepted.
pub trait IntoArg<T> {
    /// The argument.
    fn into_arg(self) -> Arg<T>;
}

impl<T: Data> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        let value = Opaque::new(self);
        let form = CallArg::Const(Value::Opaque(value.clone()));
        Arg { deps: Vec::new(), make: Box::new(move |_| value.clone().take()), form }
    }
}

impl<T: Data> IntoArg<T> for Delayed<T> {
    fn into_arg(self) -> Arg<T> {
        Arg { deps: vec![self.node], make: Box::new(take_next::<T>), form: CallArg::Input }
    }
}

impl<T: Data> IntoArg<T> for &Delayed<T> {
    fn into_arg(self) -> Arg<T> {
        self.clone().into_arg()
    }
}

impl<T: Data> IntoArg<Vec<T>> for Vec<Delayed<T>> {
    fn into_arg(self) -> Arg<Vec<T>> {
        let n = self.len();
        Arg {
            deps: self.into_iter().map(|d| d.node).collect(),
            make: Box::new(move |inputs| (0..n).map(|_| take_next::<T>(inputs)).collect()),
            form: CallArg::Inputs(n),
        }
    }
}

impl<T: Data> IntoArg<Vec<T>> for &[Delayed<T>] {
    fn into_arg(self) -> Arg<Vec<T>> {
        self.to_vec().into_arg()
    }
}

fn take_next<T: Data>(inputs: &mut std::vec::IntoIter<Value>) -> brisk_core::Result<T> {
    inputs.next().ok_or_else(|| Error::Internal("delayed call lost an input".into()))?.take_opaque()
}

macro_rules! calls {
    ($(#[$doc:meta])* $call:ident, $try_call:ident; $($a:ident: $A:ident),*) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)] // one per argument of `f`, as in Dask
        pub fn $call<$($A: Data,)* R: Data>(
            name: &str,
            f: impl Fn($($A),*) -> R + Send + Sync + 'static,
            $($a: impl IntoArg<$A>,)*
        ) -> Delayed<R> {
            $try_call(name, move |$($a),*| Ok::<R, std::convert::Infallible>(f($($a),*)), $($a),*)
        }

        /// Like the call without `try_`, for a function that returns a `Result`: an
        /// `Err` becomes the task's error and stops the compute.
        #[allow(clippy::too_many_arguments)]
        pub fn $try_call<$($A: Data,)* R: Data, E: Into<BoxError>>(
            name: &str,
            f: impl Fn($($A),*) -> Result<R, E> + Send + Sync + 'static,
            $($a: impl IntoArg<$A>,)*
        ) -> Delayed<R> {
            #[allow(unused_mut)]
            let mut deps = Vec::new();
            #[allow(unused_mut)]
            let mut args = Vec::new();
            $(let $a = $a.into_arg(); deps.extend($a.deps); args.push($a.form); let $a = $a.make;)*
            let op = Op::call(Call::new(name, args), move |inputs: Vec<Value>| {
                #[allow(unused_mut, unused_variables)]
                let mut inputs = inputs.into_iter();
                $(let $a = $a(&mut inputs)?;)*
                let out = f($($a),*).map_err(Error::user)?;
                Ok(Value::Opaque(Opaque::new(out)))
            });
            Delayed::from_parts(next_key(name), op, deps)
        }
    };
}

calls!(
    /// A delayed call of a function of no arguments.
    call0, try_call0;
);
calls!(
    /// A delayed call of a function of one argument: `call1("f", f, x)` is Dask's
    /// `delayed(f)(x)`. The [`delayed!`](crate::delayed!) macro writes it for you.
    call1, try_call1; a: A
);
calls!(
    /// A delayed call of a function of two arguments.
    call2, try_call2; a: A, b: B
);
calls!(
    /// A delayed call of a function of three arguments.
    call3, try_call3; a: A, b: B, c: C
);
calls!(
    /// A delayed call of a function of four arguments.
    call4, try_call4; a: A, b: B, c: C, d: D
);
calls!(
    /// A delayed call of a function of five arguments.
    call5, try_call5; a: A, b: B, c: C, d: D, e: E1
);
calls!(
    /// A delayed call of a function of six arguments.
    call6, try_call6; a: A, b: B, c: C, d: D, e: E1, f6: F6
);

/// Delays a function call: `delayed!(f(a, b))` is Dask's `delayed(f)(a, b)`.
///
/// Each argument may be a plain value, a [`Delayed`] (or a reference to one), or a
/// `Vec` of delayed values. `delayed!(try f(a))` delays a function returning a
/// `Result`; its `Err` becomes the task's error. Up to six arguments.
///
/// ```
/// use brisk_graph::delayed;
/// fn inc(x: i64) -> i64 { x + 1 }
/// fn total(xs: Vec<i64>) -> i64 { xs.iter().sum() }
/// fn parse(s: String) -> Result<i64, std::num::ParseIntError> { s.parse() }
///
/// let parts: Vec<_> = (0..4).map(|i| delayed!(inc(i))).collect();
/// let sum = delayed!(total(parts));
/// let n = delayed!(try parse("12".to_string()));
/// assert_eq!(sum.graph_len(), 5);
/// # let _ = n;
/// ```
#[macro_export]
macro_rules! delayed {
    (try $($f:ident)::+ ( $($arg:expr),* $(,)? )) => {
        $crate::__delayed_call!(try, stringify!($($f)::+), $($f)::+; $($arg),*)
    };
    ($($f:ident)::+ ( $($arg:expr),* $(,)? )) => {
        $crate::__delayed_call!(plain, stringify!($($f)::+), $($f)::+; $($arg),*)
    };
}

/// Registers a function so that its `delayed!` calls run in worker processes:
/// `register_fn!(registry, f)` for a function `delayed!(f(..))` calls, and
/// `register_fn!(registry, try f)` for one `delayed!(try f(..))` calls. Write the
/// path as the `delayed!` calls write it: the name is the path.
///
/// The function's arguments and result must be serde types (their values cross
/// processes as MessagePack). Register in the function given to
/// `brisk::worker_if_asked_with`, which runs in the program and in each of its
/// worker processes.
///
/// ```
/// use brisk_core::OpRegistry;
/// use brisk_graph::register_fn;
///
/// fn square(x: i64) -> i64 { x * x }
/// fn parse(s: String) -> Result<i64, std::num::ParseIntError> { s.parse() }
///
/// let mut registry = OpRegistry::new();
/// register_fn!(registry, square);
/// register_fn!(registry, try parse);
/// assert!(registry.has_function("square") && registry.has_function("parse"));
/// ```
#[macro_export]
macro_rules! register_fn {
    ($registry:expr, try $($f:ident)::+) => {
        $registry.register_fn(stringify!($($f)::+), $crate::delayed::Fallible($($f)::+))
    };
    ($registry:expr, $($f:ident)::+) => {
        $registry.register_fn(stringify!($($f)::+), $($f)::+)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __delayed_call {
    (plain, $n:expr, $f:expr;) => {
        $crate::delayed::call0($n, $f)
    };
    (plain, $n:expr, $f:expr; $a:expr) => {
        $crate::delayed::call1($n, $f, $a)
    };
    (plain, $n:expr, $f:expr; $a:expr, $b:expr) => {
        $crate::delayed::call2($n, $f, $a, $b)
    };
    (plain, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr) => {
        $crate::delayed::call3($n, $f, $a, $b, $c)
    };
    (plain, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr, $d:expr) => {
        $crate::delayed::call4($n, $f, $a, $b, $c, $d)
    };
    (plain, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        $crate::delayed::call5($n, $f, $a, $b, $c, $d, $e)
    };
    (plain, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $g:expr) => {
        $crate::delayed::call6($n, $f, $a, $b, $c, $d, $e, $g)
    };
    (try, $n:expr, $f:expr;) => {
        $crate::delayed::try_call0($n, $f)
    };
    (try, $n:expr, $f:expr; $a:expr) => {
        $crate::delayed::try_call1($n, $f, $a)
    };
    (try, $n:expr, $f:expr; $a:expr, $b:expr) => {
        $crate::delayed::try_call2($n, $f, $a, $b)
    };
    (try, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr) => {
        $crate::delayed::try_call3($n, $f, $a, $b, $c)
    };
    (try, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr, $d:expr) => {
        $crate::delayed::try_call4($n, $f, $a, $b, $c, $d)
    };
    (try, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        $crate::delayed::try_call5($n, $f, $a, $b, $c, $d, $e)
    };
    (try, $n:expr, $f:expr; $a:expr, $b:expr, $c:expr, $d:expr, $e:expr, $g:expr) => {
        $crate::delayed::try_call6($n, $f, $a, $b, $c, $d, $e, $g)
    };
}
