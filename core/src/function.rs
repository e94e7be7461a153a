//! Registered functions: the form in which a delayed call of a plain function
//! crosses to another process, and the typed side that runs it there.
//!
//! A closure cannot leave its process, but a function the program registered by
//! name can: the call travels as the name plus its arguments ([`Call`]), each
//! argument a task input, a list of task inputs, or a constant value encoded with
//! serde (MessagePack). The receiving process, running the same program, finds the
//! function by name in its [`OpRegistry`](crate::OpRegistry) and calls it.
//!
//! ```
//! use brisk_core::{Call, CallArg, OpRegistry, Opaque, Value};
//!
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! let mut registry = OpRegistry::new();
//! registry.register_fn("add", add);
//! let call = Call::new("add", vec![CallArg::Input, CallArg::Const(Value::Opaque(Opaque::new(2_i64)))]);
//! let op = registry.decode(&brisk_core::Op::call(call, |_| unreachable!()).encode()?)?;
//! let out = op.run(vec![Value::Opaque(Opaque::new(40_i64))])?;
//! assert_eq!(out.take_opaque::<i64>()?, 42);
//! # Ok::<(), brisk_core::Error>(())
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{BoxError, Error, LocalFn, Opaque, Result, Value};

/// A value type that can cross processes: serde both ways, cloned like every
/// delayed value.
pub trait Portable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Portable for T {}

/// The name a function is registered and called under: its path as written, with
/// the spaces `stringify!` puts around `::` removed (`a :: f` is `a::f`).
pub fn function_name(path: &str) -> String {
    path.split_whitespace().collect()
}

/// A call of a registered function, as another process can rebuild it.
#[derive(Clone, Debug)]
pub struct Call {
    /// The function's registered name.
    pub name: Arc<str>,
    /// Its arguments, in order.
    pub args: Vec<CallArg>,
}

impl Call {
    /// A call of the function registered as `name` (see [`function_name`]).
    pub fn new(name: &str, args: Vec<CallArg>) -> Self {
        Self { name: function_name(name).into(), args }
    }
}

/// One argument of a [`Call`].
#[derive(Clone, Debug)]
pub enum CallArg {
    /// The task's next input.
    Input,
    /// The task's next `n` inputs, as one `Vec` argument.
    Inputs(usize),
    /// A known value (an [`Opaque`] of the argument's type).
    Const(Value),
}

/// How values of one type are encoded, for opaque values that leave their process.
struct TypeCodec {
    encode: fn(&(dyn Any + Send + Sync)) -> Result<Vec<u8>>,
    decode: fn(&[u8]) -> Result<Arc<dyn Any + Send + Sync>>,
}

/// The types whose opaque values can be encoded, by type id: process-wide, since a
/// value's codec is looked up wherever it is spilled or sent.
fn codecs() -> &'static RwLock<HashMap<TypeId, TypeCodec>> {
    static CODECS: OnceLock<RwLock<HashMap<TypeId, TypeCodec>>> = OnceLock::new();
    CODECS.get_or_init(Default::default)
}

/// Makes opaque values of type `T` encodable in this process (MessagePack through
/// serde): they can then be spilled and sent to worker processes. Registering a
/// function registers its argument and result types.
pub fn register_type<T: Portable>() {
    fn encode<T: Portable>(value: &(dyn Any + Send + Sync)) -> Result<Vec<u8>> {
        let value =
            value.downcast_ref::<T>().ok_or_else(|| Error::Internal("codec type".into()))?;
        rmp_serde::to_vec_named(value).map_err(|e| Error::Encode {
            what: format!("value of type {}", std::any::type_name::<T>()),
            reason: e.to_string(),
        })
    }
    fn decode<T: Portable>(bytes: &[u8]) -> Result<Arc<dyn Any + Send + Sync>> {
        let value: T = rmp_serde::from_slice(bytes).map_err(|e| Error::Decode {
            what: "opaque value",
            reason: format!("{}: {e}", std::any::type_name::<T>()),
        })?;
        Ok(Arc::new(value))
    }
    let mut codecs = codecs().write().unwrap_or_else(|e| e.into_inner());
    codecs.insert(TypeId::of::<T>(), TypeCodec { encode: encode::<T>, decode: decode::<T> });
}

/// The MessagePack bytes of `value` (of type id `type_id`), if its type is registered.
pub(crate) fn encode_any(value: &(dyn Any + Send + Sync)) -> Option<Result<Vec<u8>>> {
    let codecs = codecs().read().unwrap_or_else(|e| e.into_inner());
    codecs.get(&value.type_id()).map(|codec| (codec.encode)(value))
}

/// Whether values with this type id can be encoded.
pub(crate) fn is_registered(type_id: TypeId) -> bool {
    codecs().read().unwrap_or_else(|e| e.into_inner()).contains_key(&type_id)
}

/// Decodes MessagePack bytes as a `T`, if `T` is registered.
pub(crate) fn decode_as<T: Any>(bytes: &[u8]) -> Option<Result<Arc<dyn Any + Send + Sync>>> {
    let codecs = codecs().read().unwrap_or_else(|e| e.into_inner());
    codecs.get(&TypeId::of::<T>()).map(|codec| (codec.decode)(bytes))
}

/// A function a registry can rebuild calls of: a plain function of up to six
/// [`Portable`] arguments returning a portable value (or, wrapped in [`Fallible`],
/// a `Result` of one).
pub trait Function<Args>: Send + Sync + 'static {
    /// How many arguments it takes.
    const ARITY: usize;
    /// Registers its argument and result types' codecs.
    fn register_types();
    /// Runs it on the values `args` make of `inputs`.
    fn call(&self, args: &[CallArg], inputs: Vec<Value>) -> Result<Value>;
}

/// A function returning `Result`: its `Err` becomes the task's error (the remote
/// side of `delayed!(try f(..))`).
pub struct Fallible<F>(pub F);

/// Takes the argument `arg` makes of the next inputs.
fn argument<T: Portable>(arg: &CallArg, inputs: &mut std::vec::IntoIter<Value>) -> Result<T> {
    let mut next =
        || inputs.next().ok_or_else(|| Error::Internal("function call lost an input".into()));
    match arg {
        CallArg::Input => next()?.take_opaque(),
        CallArg::Const(value) => value.clone().take_opaque(),
        CallArg::Inputs(n) => {
            // A list of inputs is a MessagePack array of their encodings.
            let mut bytes = Vec::new();
            rmp::encode::write_array_len(&mut bytes, *n as u32)
                .map_err(|e| Error::Internal(e.to_string()))?;
            for _ in 0..*n {
                match next()? {
                    Value::Opaque(o) => bytes.extend_from_slice(&o.portable_bytes()?),
                    other => {
                        return Err(Error::TypeMismatch {
                            expected: std::any::type_name::<T>().into(),
                            found: other.kind(),
                        });
                    }
                }
            }
            rmp_serde::from_slice(&bytes).map_err(|e| Error::Decode {
                what: "function argument",
                reason: format!("{}: {e}", std::any::type_name::<T>()),
            })
        }
    }
}

macro_rules! functions {
    ($n:expr; $($a:ident: $A:ident),*) => {
        impl<F, $($A: Portable,)* R: Portable> Function<($($A,)*)> for F
        where
            F: Fn($($A),*) -> R + Send + Sync + 'static,
        {
            const ARITY: usize = $n;
            fn register_types() {
                $(register_type::<$A>();)*
                register_type::<R>();
            }
            #[allow(unused_variables, unused_mut)]
            fn call(&self, args: &[CallArg], inputs: Vec<Value>) -> Result<Value> {
                let mut inputs = inputs.into_iter();
                let mut args = args.iter();
                $(let $a = argument::<$A>(args.next().expect("arity checked"), &mut inputs)?;)*
                Ok(Value::Opaque(Opaque::new(self($($a),*))))
            }
        }

        impl<F, $($A: Portable,)* R: Portable, E: Into<BoxError>> Function<($($A,)*)> for Fallible<F>
        where
            F: Fn($($A),*) -> std::result::Result<R, E> + Send + Sync + 'static,
        {
            const ARITY: usize = $n;
            fn register_types() {
                $(register_type::<$A>();)*
                register_type::<R>();
            }
            #[allow(unused_variables, unused_mut)]
            fn call(&self, args: &[CallArg], inputs: Vec<Value>) -> Result<Value> {
                let mut inputs = inputs.into_iter();
                let mut args = args.iter();
                $(let $a = argument::<$A>(args.next().expect("arity checked"), &mut inputs)?;)*
                let out = (self.0)($($a),*).map_err(Error::user)?;
                Ok(Value::Opaque(Opaque::new(out)))
            }
        }
    };
}

functions!(0;);
functions!(1; a: A);
functions!(2; a: A, b: B);
functions!(3; a: A, b: B, c: C);
functions!(4; a: A, b: B, c: C, d: D);
functions!(5; a: A, b: B, c: C, d: D, e: E1);
functions!(6; a: A, b: B, c: C, d: D, e: E1, f6: F6);

/// Rebuilds the local op of a call of one registered function.
pub(crate) type Binder = Arc<dyn Fn(Call) -> Result<Arc<LocalFn>> + Send + Sync>;

/// The binder of `f`: checks the call's arity, then runs `f` on what its
/// arguments make of the task's inputs.
pub(crate) fn binder<Args, F: Function<Args>>(f: F) -> Binder {
    F::register_types();
    let f = Arc::new(f);
    Arc::new(move |call: Call| {
        if call.args.len() != F::ARITY {
            return Err(Error::Arity {
                op: format!("function {}", call.name),
                expected: F::ARITY,
                found: call.args.len(),
            });
        }
        let f = Arc::clone(&f);
        let args = call.args;
        Ok(Arc::new(move |inputs: Vec<Value>| f.call(&args, inputs)) as Arc<LocalFn>)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Op, OpRegistry};

    fn halve(x: i64) -> Result<i64, String> {
        if x % 2 == 0 { Ok(x / 2) } else { Err(format!("{x} is odd")) }
    }

    fn total(scale: i64, xs: Vec<i64>) -> i64 {
        scale * xs.iter().sum::<i64>()
    }

    fn shipped(call: Call) -> Result<Op> {
        let mut registry = OpRegistry::new();
        registry.register_fn("halve", Fallible(halve)).register_fn("total", total);
        registry.decode(&Op::call(call, |_| unreachable!("runs remotely")).encode()?)
    }

    fn int(x: i64) -> Value {
        Value::Opaque(Opaque::new(x))
    }

    #[test]
    fn lists_of_inputs_and_constants_reach_the_function_in_order() {
        let op =
            shipped(Call::new("total", vec![CallArg::Const(int(3)), CallArg::Inputs(3)])).unwrap();
        // Inputs as they arrive from another process: encoded.
        let inputs = [1, 20, 300].map(|x| Value::decode(&int(x).encode().unwrap()).unwrap());
        assert_eq!(op.run(inputs.to_vec()).unwrap().take_opaque::<i64>().unwrap(), 963);
    }

    #[test]
    fn a_fallible_function_errs_with_its_message() {
        let op = shipped(Call::new("halve", vec![CallArg::Input])).unwrap();
        assert_eq!(op.run(vec![int(8)]).unwrap().take_opaque::<i64>().unwrap(), 4);
        let err = op.run(vec![int(7)]).unwrap_err();
        assert!(err.to_string().contains("7 is odd"), "{err}");
    }

    #[test]
    fn unknown_functions_and_wrong_arities_are_errors_naming_them() {
        let err = shipped(Call::new("triple", vec![CallArg::Input])).unwrap_err();
        assert!(matches!(&err, Error::UnknownFunction { name } if name == "triple"), "{err}");
        let err = shipped(Call::new("halve", vec![CallArg::Input, CallArg::Input])).unwrap_err();
        assert!(err.to_string().contains("halve"), "{err}");
        let op = shipped(Call::new("halve", vec![CallArg::Input])).unwrap();
        let err = op.run(vec![Value::Opaque(Opaque::new("8".to_string()))]).unwrap_err();
        assert!(err.to_string().contains("String"), "{err}");
    }

    #[test]
    fn paths_name_functions_without_spaces() {
        assert_eq!(function_name(stringify!(stats::mean)), "stats::mean");
        assert_eq!(Call::new("a :: b", vec![]).name.as_ref(), "a::b");
    }
}
