//! Column expressions: built with [`col`] and [`lit`], type-checked against a schema
//! when a frame op is built, evaluated on each partition with Arrow's kernels.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, RecordBatch, Scalar,
    StringArray, new_null_array,
};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};

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
                            common(&l, &r).expect("numeric")
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

    /// Evaluates on a batch, to one array of the batch's length.
    pub fn evaluate(&self, batch: &RecordBatch) -> std::result::Result<ArrayRef, ArrowError> {
        let v = self.eval(batch)?;
        v.into_array(batch.num_rows())
    }

    fn eval(&self, batch: &RecordBatch) -> std::result::Result<Val, ArrowError> {
        Ok(match self {
            Expr::Col(c) => Val::Array(
                batch
                    .column_by_name(c)
                    .ok_or_else(|| ArrowError::SchemaError(format!("no column '{c}'")))?
                    .clone(),
            ),
            Expr::Lit(l) => Val::Scalar(lit_array(l)),
            Expr::Binary { op, left, right } => {
                let (l, r) = (left.eval(batch)?, right.eval(batch)?);
                let n = batch.num_rows();
                match op {
                    BinOp::And | BinOp::Or => {
                        let (l, r) = (l.into_array(n)?, r.into_array(n)?);
                        let (l, r) = (as_bool(&l)?, as_bool(&r)?);
                        let out = if *op == BinOp::And {
                            boolean::and_kleene(l, r)?
                        } else {
                            boolean::or_kleene(l, r)?
                        };
                        Val::Array(Arc::new(out))
                    }
                    _ => {
                        let target = if *op == BinOp::Div {
                            DataType::Float64
                        } else {
                            common(l.data_type(), r.data_type()).ok_or_else(|| {
                                ArrowError::InvalidArgumentError("type mismatch".into())
                            })?
                        };
                        let (l, r) = (l.cast(&target)?, r.cast(&target)?);
                        let scalar = matches!((&l, &r), (Val::Scalar(_), Val::Scalar(_)));
                        let (ld, rd) = (l.datum(), r.datum());
                        let (ld, rd): (&dyn Datum, &dyn Datum) = (ld.as_ref(), rd.as_ref());
                        let out: ArrayRef = match op {
                            BinOp::Add => numeric::add_wrapping(ld, rd)?,
                            BinOp::Sub => numeric::sub_wrapping(ld, rd)?,
                            BinOp::Mul => numeric::mul_wrapping(ld, rd)?,
                            BinOp::Div => numeric::div(ld, rd)?,
                            BinOp::Eq => Arc::new(cmp::eq(ld, rd)?),
                            BinOp::Ne => Arc::new(cmp::neq(ld, rd)?),
                            BinOp::Lt => Arc::new(cmp::lt(ld, rd)?),
                            BinOp::Le => Arc::new(cmp::lt_eq(ld, rd)?),
                            BinOp::Gt => Arc::new(cmp::gt(ld, rd)?),
                            BinOp::Ge => Arc::new(cmp::gt_eq(ld, rd)?),
                            BinOp::And | BinOp::Or => unreachable!("handled above"),
                        };
                        if scalar { Val::Scalar(out) } else { Val::Array(out) }
                    }
                }
            }
            Expr::Not(e) => {
                let a = e.eval(batch)?.into_array(batch.num_rows())?;
                Val::Array(Arc::new(boolean::not(as_bool(&a)?)?))
            }
            Expr::IsNull(e) => {
                let a = e.eval(batch)?.into_array(batch.num_rows())?;
                Val::Array(Arc::new(boolean::is_null(&a)?))
            }
            Expr::FillNull(e, v) => {
                let (a, fill) = (e.eval(batch)?, v.eval(batch)?);
                let target = common(a.data_type(), fill.data_type())
                    .ok_or_else(|| ArrowError::InvalidArgumentError("type mismatch".into()))?;
                let n = batch.num_rows();
                let a = a.cast(&target)?.into_array(n)?;
                let fill = fill.cast(&target)?.into_array(n)?;
                let mask = boolean::is_not_null(&a)?;
                Val::Array(arrow::compute::kernels::zip::zip(&mask, &a, &fill)?)
            }
            Expr::Cast(e, to) => {
                let to: DataType = to.parse()?;
                e.eval(batch)?.cast(&to)?
            }
            Expr::Str(op, e, pattern) => {
                let a = e.eval(batch)?.into_array(batch.num_rows())?;
                let pat = Scalar::new(StringArray::from(vec![pattern.as_str()]));
                let out = match op {
                    StrOp::Contains => arrow::compute::kernels::comparison::contains(&a, &pat)?,
                    StrOp::StartsWith => {
                        arrow::compute::kernels::comparison::starts_with(&a, &pat)?
                    }
                };
                Val::Array(Arc::new(out))
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
        }
    }
}

/// A value during evaluation: a column, or one value standing for every row.
enum Val {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Val {
    fn data_type(&self) -> &DataType {
        match self {
            Val::Array(a) | Val::Scalar(a) => a.data_type(),
        }
    }

    fn cast(self, to: &DataType) -> std::result::Result<Val, ArrowError> {
        if self.data_type() == to {
            return Ok(self);
        }
        Ok(match self {
            Val::Array(a) => Val::Array(arrow::compute::cast(&a, to)?),
            Val::Scalar(a) => Val::Scalar(arrow::compute::cast(&a, to)?),
        })
    }

    fn datum(&self) -> Box<dyn Datum + '_> {
        match self {
            Val::Array(a) => Box::new(a),
            Val::Scalar(a) => Box::new(Scalar::new(a.clone())),
        }
    }

    fn into_array(self, n: usize) -> std::result::Result<ArrayRef, ArrowError> {
        match self {
            Val::Array(a) => Ok(a),
            Val::Scalar(a) if a.is_null(0) => Ok(new_null_array(a.data_type(), n)),
            Val::Scalar(a) => {
                let idx = arrow::array::UInt32Array::from(vec![0u32; n]);
                arrow::compute::take(&a, &idx, None)
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

fn lit_array(l: &Lit) -> ArrayRef {
    match l {
        Lit::Null => new_null_array(&DataType::Null, 1),
        Lit::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Lit::Int(i) => Arc::new(Int64Array::from(vec![*i])),
        Lit::Float(x) => Arc::new(Float64Array::from(vec![*x])),
        Lit::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
    }
}

fn as_bool(a: &ArrayRef) -> std::result::Result<&BooleanArray, ArrowError> {
    a.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!("expected booleans, got {}", a.data_type()))
    })
}

fn is_bool(t: &DataType) -> bool {
    matches!(t, DataType::Boolean | DataType::Null)
}

fn is_numeric(t: &DataType) -> bool {
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
