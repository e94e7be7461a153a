//! Column expressions: built with [`col`] and [`lit`], type-checked against a schema
//! when a frame op is built, evaluated on each partition with Arrow's kernels
//! (`eval`), or parsed from text ([`parse_expr`], in `parse`).

mod eval;
mod parse;

pub(crate) use parse::checked;
pub use parse::parse_expr;

use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};

use brisk_core::text::short_value;

use crate::error::unknown_column;
use crate::{Error, Result};

/// A literal value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Lit {
    /// Null (of any type).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (Int64).
    Int(i64),
    /// A float (Float64).
    Float(f64),
    /// A string (Utf8).
    Str(String),
}

impl From<bool> for Lit {
    fn from(x: bool) -> Self {
        Lit::Bool(x)
    }
}
impl From<i64> for Lit {
    fn from(x: i64) -> Self {
        Lit::Int(x)
    }
}
impl From<i32> for Lit {
    fn from(x: i32) -> Self {
        Lit::Int(i64::from(x))
    }
}
impl From<f64> for Lit {
    fn from(x: f64) -> Self {
        Lit::Float(x)
    }
}
impl From<&str> for Lit {
    fn from(x: &str) -> Self {
        Lit::Str(x.to_string())
    }
}
impl From<String> for Lit {
    fn from(x: String) -> Self {
        Lit::Str(x)
    }
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (true division: always Float64, as in pandas)
    Div,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and` (Kleene logic: null and false is false)
    And,
    /// `or` (Kleene logic)
    Or,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

/// String predicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrOp {
    /// Contains the pattern (a plain substring).
    Contains,
    /// Starts with the pattern.
    StartsWith,
}

/// An expression over a partition's columns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Expr {
    /// A column by name.
    Col(String),
    /// A literal, broadcast to every row.
    Lit(Lit),
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Logical not.
    Not(Box<Expr>),
    /// Whether each value is null.
    IsNull(Box<Expr>),
    /// Nulls replaced by a value.
    FillNull(Box<Expr>, Box<Expr>),
    /// A cast to another type (Arrow's type names: `Int64`, `Float64`, `Utf8`, ...).
    Cast(Box<Expr>, String),
    /// A string predicate with a pattern.
    Str(StrOp, Box<Expr>, String),
    /// Whether each value is one of a list of literals (SQL's `x in (...)`,
    /// pandas' `isin`); a null value gives null, a null in the list matches
    /// nothing.
    In(Box<Expr>, Vec<Lit>),
}

/// A column by name.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Col(name.into())
}

/// A literal value.
pub fn lit(value: impl Into<Lit>) -> Expr {
    Expr::Lit(value.into())
}

macro_rules! binary {
    ($($name:ident => $op:ident, $doc:expr;)*) => {
        $(
            #[doc = $doc]
            pub fn $name(self, other: impl Into<Expr>) -> Expr {
                Expr::Binary { op: BinOp::$op, left: Box::new(self), right: Box::new(other.into()) }
            }
        )*
    };
}

impl<T: Into<Lit>> From<T> for Expr {
    fn from(x: T) -> Self {
        Expr::Lit(x.into())
    }
}

macro_rules! operator {
    ($($trait:ident, $method:ident => $op:ident;)*) => {
        $(
            impl<T: Into<Expr>> std::ops::$trait<T> for Expr {
                type Output = Expr;
                fn $method(self, other: T) -> Expr {
                    Expr::Binary { op: BinOp::$op, left: Box::new(self), right: Box::new(other.into()) }
                }
            }
        )*
    };
}

operator! {
    Add, add => Add;
    Sub, sub => Sub;
    Mul, mul => Mul;
    Div, div => Div;
}

impl std::ops::Not for Expr {
    type Output = Expr;
    /// Logical not.
    fn not(self) -> Expr {
        Expr::Not(Box::new(self))
    }
}

impl Expr {
    binary! {
        eq => Eq, "`self == other`";
        ne => Ne, "`self != other`";
        lt => Lt, "`self < other`";
        le => Le, "`self <= other`";
        gt => Gt, "`self > other`";
        ge => Ge, "`self >= other`";
        and => And, "`self and other`";
        or => Or, "`self or other`";
    }

    /// Whether each value is null.
    pub fn is_null(self) -> Expr {
        Expr::IsNull(Box::new(self))
    }

    /// Nulls replaced by `value`.
    pub fn fill_null(self, value: impl Into<Expr>) -> Expr {
        Expr::FillNull(Box::new(self), Box::new(value.into()))
    }

    /// Cast to `to`.
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast(Box::new(self), to.to_string())
    }

    /// Whether the string contains `pattern`.
    pub fn contains(self, pattern: impl Into<String>) -> Expr {
        Expr::Str(StrOp::Contains, Box::new(self), pattern.into())
    }

    /// Whether each value is one of `values` (one hash lookup per row, however
    /// long the list).
    pub fn is_in<L: Into<Lit>>(self, values: impl IntoIterator<Item = L>) -> Expr {
        Expr::In(Box::new(self), values.into_iter().map(Into::into).collect())
    }

    /// Whether the string starts with `pattern`.
    pub fn starts_with(self, pattern: impl Into<String>) -> Expr {
        Expr::Str(StrOp::StartsWith, Box::new(self), pattern.into())
    }

    /// The column name this expression gives by default: a column's own name, else
    /// its printed form.
    pub fn name(&self) -> String {
        match self {
            Expr::Col(c) => c.clone(),
            Expr::FillNull(e, _) | Expr::Cast(e, _) => e.name(),
            other => other.to_string(),
        }
    }

    /// The type this expression gives on `schema`, or an error naming the column or
    /// the mismatch.
    pub fn data_type(&self, schema: &Schema) -> Result<DataType> {
        let mismatch = |reason: String| Error::Type { column: self.to_string(), reason };
        Ok(match self {
            Expr::Col(c) => schema
                .field_with_name(c)
                .map_err(|_| {
                    let names: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    unknown_column(c, &names)
                })?
                .data_type()
                .clone(),
            Expr::Lit(l) => lit_type(l),
            Expr::Binary { op, left, right } => {
                let (l, r) = (left.data_type(schema)?, right.data_type(schema)?);
                match op {
                    BinOp::And | BinOp::Or => {
                        if !is_bool(&l) || !is_bool(&r) {
                            return Err(mismatch(format!(
                                "'{}' needs booleans, got {l} and {r}",
                                op.symbol()
                            )));
                        }
                        DataType::Boolean
                    }
                    BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                        if !is_numeric(&l) || !is_numeric(&r) {
                            return Err(mismatch(format!(
                                "'{}' needs numbers, got {l} and {r}",
                                op.symbol()
                            )));
                        }
                        if *op == BinOp::Div {
                            DataType::Float64
                        } else {
                            // Numeric types without a common one (a decimal and an
                            // integer): a type error, not a guess.
                            common(&l, &r).ok_or_else(|| {
                                mismatch(format!(
                                    "'{}' cannot combine {l} and {r}; cast one to the other's type first",
                                    op.symbol()
                                ))
                            })?
                        }
                    }
                    _ => {
                        if common(&l, &r).is_none() {
                            return Err(mismatch(format!("cannot compare {l} with {r}")));
                        }
                        DataType::Boolean
                    }
                }
            }
            Expr::Not(e) => {
                let t = e.data_type(schema)?;
                if !is_bool(&t) {
                    return Err(mismatch(format!("'not' needs a boolean, got {t}")));
                }
                DataType::Boolean
            }
            Expr::IsNull(e) => {
                e.data_type(schema)?;
                DataType::Boolean
            }
            Expr::FillNull(e, v) => {
                let (t, vt) = (e.data_type(schema)?, v.data_type(schema)?);
                common(&t, &vt).ok_or_else(|| mismatch(format!("cannot fill {t} with {vt}")))?
            }
            Expr::Cast(e, to) => {
                let from = e.data_type(schema)?;
                let to: DataType = to.parse().map_err(|e: ArrowError| mismatch(e.to_string()))?;
                if !arrow::compute::can_cast_types(&from, &to) {
                    return Err(mismatch(format!("cannot cast {from} to {to}")));
                }
                to
            }
            Expr::In(e, values) => {
                // The column and every value compared as one type, as evaluated.
                let t = e.data_type(schema)?;
                let mut joint = t.clone();
                for v in values {
                    joint = common(&joint, &lit_type(v)).ok_or_else(|| {
                        mismatch(format!(
                            "'in' cannot compare {t} with {}",
                            short_value(&Expr::Lit(v.clone()).to_string(), 40)
                        ))
                    })?;
                }
                in_type(&joint).ok_or_else(|| mismatch(format!("'in' does not support {t}")))?;
                DataType::Boolean
            }
            Expr::Str(_, e, _) => {
                let t = e.data_type(schema)?;
                if !matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                    return Err(mismatch(format!(
                        "string predicates need a string column, got {t}"
                    )));
                }
                DataType::Boolean
            }
        })
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Col(c) => write!(f, "{c}"),
            Expr::Lit(Lit::Null) => write!(f, "null"),
            Expr::Lit(Lit::Bool(b)) => write!(f, "{b}"),
            Expr::Lit(Lit::Int(i)) => write!(f, "{i}"),
            Expr::Lit(Lit::Float(x)) => write!(f, "{x:?}"),
            Expr::Lit(Lit::Str(s)) => write!(f, "'{s}'"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::IsNull(e) => write!(f, "is_null({e})"),
            Expr::FillNull(e, v) => write!(f, "fill_null({e}, {v})"),
            Expr::Cast(e, t) => write!(f, "cast({e} as {t})"),
            Expr::Str(StrOp::Contains, e, p) => write!(f, "contains({e}, '{p}')"),
            Expr::Str(StrOp::StartsWith, e, p) => write!(f, "starts_with({e}, '{p}')"),
            Expr::In(e, values) => {
                let list: Vec<String> =
                    values.iter().map(|v| Expr::Lit(v.clone()).to_string()).collect();
                write!(f, "{e} in ({})", list.join(", "))
            }
        }
    }
}

fn lit_type(l: &Lit) -> DataType {
    match l {
        Lit::Null => DataType::Null,
        Lit::Bool(_) => DataType::Boolean,
        Lit::Int(_) => DataType::Int64,
        Lit::Float(_) => DataType::Float64,
        Lit::Str(_) => DataType::Utf8,
    }
}

fn is_bool(t: &DataType) -> bool {
    matches!(t, DataType::Boolean | DataType::Null)
}

/// The type `x in (...)` compares values of type `t` as: strings as Utf8,
/// integers as Int64, other numbers as Float64, booleans; `None` for others.
fn in_type(t: &DataType) -> Option<DataType> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Boolean => DataType::Boolean,
        DataType::Null => DataType::Null,
        t if t.is_integer() => DataType::Int64,
        t if t.is_numeric() => DataType::Float64,
        _ => return None,
    })
}

/// Whether a column of type `t` takes numeric operations and aggregations: a
/// Null column (no values, as a header-only file's) counts as an empty numeric
/// one.
pub(crate) fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || *t == DataType::Null
}

/// The type two operands are brought to before an operation: equal types stay,
/// integers widen to Int64, a float makes Float64; null takes the other's type.
pub(crate) fn common(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match (a, b) {
        (Null, t) | (t, Null) => t.clone(),
        _ if a == b => a.clone(),
        (x, y) if (x.is_floating() || y.is_floating()) && x.is_numeric() && y.is_numeric() => {
            Float64
        }
        (x, y) if x.is_integer() && y.is_integer() => Int64,
        (Utf8 | LargeUtf8, Utf8 | LargeUtf8) => Utf8,
        _ => return None,
    })
}
