//! Column expressions: built with [`col`] and [`lit`], type-checked against a schema
//! when a frame op is built, evaluated on each partition with Arrow's kernels
//! (`eval`), or parsed from text ([`parse_expr`], in `parse`).

mod eval;
mod parse;

pub(crate) use parse::{checked, located, parse_at};
pub use parse::{parse_expr, parse_expr_for};

use std::sync::Arc;

use arrow::datatypes::{DataType, IntervalUnit, Schema, TimeUnit};
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
    /// A date (Date32): days since 1970-01-01 (`date '1998-09-02'`).
    Date(i32),
    /// A timestamp without time zone (Timestamp(Microsecond)): microseconds since
    /// 1970-01-01 00:00:00 (`timestamp '1998-09-02 10:30:00'`).
    Timestamp(i64),
    /// An interval (Interval(MonthDayNano)): months, days and nanoseconds, kept
    /// apart as SQL's are (`interval 90 day`, `interval '1 year 2 months'`).
    Interval {
        /// Whole months (a year is 12).
        months: i32,
        /// Whole days (a week is 7).
        days: i32,
        /// Nanoseconds (hours, minutes, seconds and below).
        nanos: i64,
    },
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
    /// SQL's `like`: `%` any run of characters, `_` one character.
    Like,
    /// `like`, ignoring case.
    ILike,
}

/// Scalar functions of one or more arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Func {
    /// The first non-null argument, row by row.
    Coalesce,
    /// The absolute value.
    Abs,
    /// Rounded to a number of decimals (0 unless given; negative rounds to tens,
    /// hundreds, ...), halves away from zero as SQL's `round`.
    Round,
    /// A string in lower case.
    Lower,
    /// A string in upper case.
    Upper,
    /// A string's length in characters.
    Length,
    /// A date's or timestamp's year.
    Year,
    /// A date's or timestamp's month (1-12).
    Month,
    /// A date's or timestamp's day of the month (1-31).
    Day,
}

impl Func {
    /// The function's name in expressions.
    pub fn name(self) -> &'static str {
        match self {
            Func::Coalesce => "coalesce",
            Func::Abs => "abs",
            Func::Round => "round",
            Func::Lower => "lower",
            Func::Upper => "upper",
            Func::Length => "length",
            Func::Year => "year",
            Func::Month => "month",
            Func::Day => "day",
        }
    }

    /// How many arguments it takes, at least and at most.
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Coalesce => (1, usize::MAX),
            Func::Round => (1, 2),
            _ => (1, 1),
        }
    }

    /// The function of this name (any case).
    pub fn parse(name: &str) -> Option<Func> {
        let all = [
            Func::Coalesce,
            Func::Abs,
            Func::Round,
            Func::Lower,
            Func::Upper,
            Func::Length,
            Func::Year,
            Func::Month,
            Func::Day,
        ];
        all.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }
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
    /// `case when c1 then v1 when c2 then v2 ... else e end`: the value of the
    /// first condition that is true (a null condition is not), else `e` (null
    /// when absent).
    Case {
        /// `(condition, value)` pairs, in order.
        when: Vec<(Expr, Expr)>,
        /// The value when no condition holds.
        otherwise: Option<Box<Expr>>,
    },
    /// A scalar function call.
    Call(Func, Vec<Expr>),
}

/// A column by name.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Col(name.into())
}

/// A literal value.
pub fn lit(value: impl Into<Lit>) -> Expr {
    Expr::Lit(value.into())
}

/// The first non-null of `values`, row by row (SQL's `coalesce`).
pub fn coalesce(values: impl IntoIterator<Item = Expr>) -> Expr {
    Expr::Call(Func::Coalesce, values.into_iter().collect())
}

/// `case when c1 then v1 ... else otherwise end`: the value of the first
/// condition that is true, else `otherwise` (null when `None`).
pub fn case_when(when: impl IntoIterator<Item = (Expr, Expr)>, otherwise: Option<Expr>) -> Expr {
    Expr::Case { when: when.into_iter().collect(), otherwise: otherwise.map(Box::new) }
}

impl Lit {
    /// A date from `YYYY-MM-DD`.
    pub fn date(text: &str) -> Result<Lit> {
        match temporal(text, &DataType::Date32)? {
            Some(v) => Ok(Lit::Date(v as i32)),
            None => Err(Error::Invalid(format!("'{text}' is not a date (write YYYY-MM-DD)"))),
        }
    }

    /// A timestamp from `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`), no time zone.
    pub fn timestamp(text: &str) -> Result<Lit> {
        match temporal(text, &DataType::Timestamp(TimeUnit::Microsecond, None))? {
            Some(v) => Ok(Lit::Timestamp(v)),
            None => Err(Error::Invalid(format!(
                "'{text}' is not a timestamp (write YYYY-MM-DD HH:MM:SS)"
            ))),
        }
    }

    /// An interval of `n` days.
    pub fn days(n: i32) -> Lit {
        Lit::Interval { months: 0, days: n, nanos: 0 }
    }

    /// An interval of `n` months.
    pub fn months(n: i32) -> Lit {
        Lit::Interval { months: n, days: 0, nanos: 0 }
    }
}

/// `text` cast to `to` as the CSV reader reads it (Arrow's cast, strict): the
/// one-value array, or `None` when it is not a value of that type.
fn temporal_array(text: &str, to: &DataType) -> Option<arrow::array::ArrayRef> {
    use arrow::array::{Array, StringArray};
    let strict = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let a = StringArray::from(vec![text]);
    arrow::compute::cast_with_options(&a, to, &strict).ok().filter(|v| !v.is_null(0))
}

/// `text` as a date's days or a timestamp's microseconds; `None` when it is not
/// one.
fn temporal(text: &str, to: &DataType) -> Result<Option<i64>> {
    use arrow::array::AsArray;
    let Some(v) = temporal_array(text.trim(), to) else { return Ok(None) };
    Ok(Some(match to {
        DataType::Date32 => i64::from(v.as_primitive::<arrow::datatypes::Date32Type>().value(0)),
        _ => v.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0),
    }))
}

/// How a date literal prints: `YYYY-MM-DD`; a timestamp's as
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`.
fn temporal_text(l: &Lit) -> String {
    use arrow::array::{Array, AsArray};
    let a: arrow::array::ArrayRef = match l {
        Lit::Date(d) => Arc::new(arrow::array::Date32Array::from(vec![*d])),
        Lit::Timestamp(t) => Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![*t])),
        _ => return String::new(),
    };
    match arrow::compute::cast(&a, &DataType::Utf8) {
        Ok(s) if !s.is_null(0) => s.as_string::<i32>().value(0).replace('T', " "),
        _ => String::new(),
    }
}

/// An interval as text that parses back: `'1 month 2 days 3 microseconds'`.
fn interval_text(months: i32, days: i32, nanos: i64) -> String {
    let mut parts = Vec::new();
    if months != 0 {
        parts.push(format!("{months} month"));
    }
    if days != 0 || (months == 0 && nanos == 0) {
        parts.push(format!("{days} day"));
    }
    if nanos != 0 {
        if nanos % 1000 == 0 {
            parts.push(format!("{} microsecond", nanos / 1000));
        } else {
            parts.push(format!("{nanos} nanosecond"));
        }
    }
    parts.join(" ")
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

    /// SQL's `self like pattern` (`%` any run, `_` one character).
    pub fn like(self, pattern: impl Into<String>) -> Expr {
        Expr::Str(StrOp::Like, Box::new(self), pattern.into())
    }

    /// SQL's `self ilike pattern`: `like` ignoring case.
    pub fn ilike(self, pattern: impl Into<String>) -> Expr {
        Expr::Str(StrOp::ILike, Box::new(self), pattern.into())
    }

    /// SQL's `self between low and high`: `self >= low and self <= high`.
    pub fn between(self, low: impl Into<Expr>, high: impl Into<Expr>) -> Expr {
        self.clone().ge(low).and(self.le(high))
    }

    /// The absolute value.
    pub fn abs(self) -> Expr {
        Expr::Call(Func::Abs, vec![self])
    }

    /// Rounded to `decimals` decimals (negative: to tens, hundreds, ...), halves
    /// away from zero.
    pub fn round(self, decimals: i64) -> Expr {
        Expr::Call(Func::Round, vec![self, Expr::Lit(Lit::Int(decimals))])
    }

    /// The string in lower case.
    pub fn lower(self) -> Expr {
        Expr::Call(Func::Lower, vec![self])
    }

    /// The string in upper case.
    pub fn upper(self) -> Expr {
        Expr::Call(Func::Upper, vec![self])
    }

    /// The string's length in characters.
    pub fn length(self) -> Expr {
        Expr::Call(Func::Length, vec![self])
    }

    /// The year of a date or timestamp.
    pub fn year(self) -> Expr {
        Expr::Call(Func::Year, vec![self])
    }

    /// The month (1-12) of a date or timestamp.
    pub fn month(self) -> Expr {
        Expr::Call(Func::Month, vec![self])
    }

    /// The day of the month (1-31) of a date or timestamp.
    pub fn day(self) -> Expr {
        Expr::Call(Func::Day, vec![self])
    }

    /// The columns this expression reads, each once, in the order first met.
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Col(c) => {
                    if !out.contains(c) {
                        out.push(c.clone());
                    }
                }
                Expr::Lit(_) => {}
                Expr::Binary { left, right, .. } | Expr::FillNull(left, right) => {
                    stack.push(right);
                    stack.push(left);
                }
                Expr::Not(x)
                | Expr::IsNull(x)
                | Expr::Cast(x, _)
                | Expr::Str(_, x, _)
                | Expr::In(x, _) => stack.push(x),
                Expr::Case { when, otherwise } => {
                    stack.extend(otherwise.as_deref());
                    for (c, v) in when.iter().rev() {
                        stack.push(v);
                        stack.push(c);
                    }
                }
                Expr::Call(_, args) => stack.extend(args.iter().rev()),
            }
        }
        out
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
                        if let Some(t) = temporal_arithmetic(*op, &l, &r) {
                            let part_day = |e: &Expr| matches!(e, Expr::Lit(Lit::Interval { nanos, .. }) if *nanos != 0);
                            if t == DataType::Date32 && (part_day(left) || part_day(right)) {
                                return Err(mismatch(
                                    "a date moves by whole days, months and years; for hours and below use a timestamp (cast(d as Timestamp(Microsecond, None)))".into(),
                                ));
                            }
                            return Ok(t);
                        }
                        if !is_numeric(&l) || !is_numeric(&r) {
                            let hint = if matches!(op, BinOp::Add | BinOp::Sub) {
                                " (or a date and an interval)"
                            } else {
                                ""
                            };
                            return Err(mismatch(format!(
                                "'{}' needs numbers{hint}, got {l} and {r}",
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
                            match (text_as_temporal(left, &r), text_as_temporal(right, &l)) {
                                (Some(Err(e)), _) | (_, Some(Err(e))) => return Err(mismatch(e)),
                                (Some(Ok(())), _) | (_, Some(Ok(()))) => {}
                                _ => {
                                    return Err(mismatch(format!("cannot compare {l} with {r}")));
                                }
                            }
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
            Expr::Str(op, e, _) => {
                let t = e.data_type(schema)?;
                if !is_text(&t) {
                    let what = match op {
                        StrOp::Like => "'like' needs a string",
                        StrOp::ILike => "'ilike' needs a string",
                        _ => "string predicates need a string column",
                    };
                    return Err(mismatch(format!("{what}, got {t}")));
                }
                DataType::Boolean
            }
            Expr::Case { when, otherwise } => {
                if when.is_empty() {
                    return Err(mismatch("'case' needs at least one 'when'".into()));
                }
                let mut joint = DataType::Null;
                for (c, v) in when {
                    let ct = c.data_type(schema)?;
                    if !is_bool(&ct) {
                        return Err(Error::Type {
                            column: c.to_string(),
                            reason: format!("a 'when' condition needs a boolean, got {ct}"),
                        });
                    }
                    let vt = v.data_type(schema)?;
                    joint = common(&joint, &vt).ok_or_else(|| {
                        mismatch(format!("'case' values of types {joint} and {vt} do not mix"))
                    })?;
                }
                if let Some(e) = otherwise {
                    let et = e.data_type(schema)?;
                    joint = common(&joint, &et).ok_or_else(|| {
                        mismatch(format!("'case' values of types {joint} and {et} do not mix"))
                    })?;
                }
                joint
            }
            Expr::Call(f, args) => {
                let types = args.iter().map(|a| a.data_type(schema)).collect::<Result<Vec<_>>>()?;
                call_type(*f, args, &types).map_err(mismatch)?
            }
        })
    }
}

/// The type `f(args)` gives, or why it cannot be called so.
fn call_type(f: Func, args: &[Expr], types: &[DataType]) -> std::result::Result<DataType, String> {
    let name = f.name();
    let (min, max) = f.arity();
    if types.len() < min || types.len() > max {
        let wanted = match (min, max) {
            (1, usize::MAX) => "at least 1 argument".to_string(),
            (a, b) if a == b => format!("{a} argument"),
            (a, b) => format!("{a} or {b} arguments"),
        };
        return Err(format!("{name}() takes {wanted}, got {}", types.len()));
    }
    let t = &types[0];
    Ok(match f {
        Func::Coalesce => {
            let mut joint = DataType::Null;
            for u in types {
                joint = common(&joint, u).ok_or_else(|| {
                    format!("coalesce() cannot mix {joint} and {u}; cast one first")
                })?;
            }
            joint
        }
        Func::Abs | Func::Round => {
            if f == Func::Round
                && let Some(d) = args.get(1)
                && !matches!(d, Expr::Lit(Lit::Int(_)))
            {
                return Err(format!("round()'s decimals must be a whole number, got {d}"));
            }
            match t {
                DataType::Null => DataType::Null,
                t if t.is_integer() => DataType::Int64,
                t if t.is_numeric() => DataType::Float64,
                t => return Err(format!("{name}() needs a number, got {t}")),
            }
        }
        Func::Lower | Func::Upper | Func::Length => {
            if !is_text(t) && *t != DataType::Null {
                return Err(format!("{name}() needs a string, got {t}"));
            }
            if f == Func::Length { DataType::Int64 } else { DataType::Utf8 }
        }
        Func::Year | Func::Month | Func::Day => {
            if !is_temporal(t) && *t != DataType::Null {
                return Err(format!("{name}() needs a date or timestamp, got {t}"));
            }
            DataType::Int64
        }
    })
}

/// The type of date/interval arithmetic, `None` when `l op r` is not that.
pub(crate) fn temporal_arithmetic(op: BinOp, l: &DataType, r: &DataType) -> Option<DataType> {
    let interval = |t: &DataType| matches!(t, DataType::Interval(_));
    match op {
        BinOp::Add if is_temporal(l) && interval(r) => Some(l.clone()),
        BinOp::Add if interval(l) && is_temporal(r) => Some(r.clone()),
        BinOp::Sub if is_temporal(l) && interval(r) => Some(l.clone()),
        BinOp::Add | BinOp::Sub if interval(l) && interval(r) => Some(l.clone()),
        // The days between two dates.
        BinOp::Sub if *l == DataType::Date32 && *r == DataType::Date32 => Some(DataType::Int64),
        _ => None,
    }
}

/// For a comparison of `e` with a value of type `other`: when `e` is a string
/// literal and `other` a date or timestamp, whether the string reads as one
/// (SQL compares `d <= '1998-09-02'` as dates); `None` when that does not apply.
fn text_as_temporal(e: &Expr, other: &DataType) -> Option<std::result::Result<(), String>> {
    let Expr::Lit(Lit::Str(s)) = e else { return None };
    if !is_temporal(other) {
        return None;
    }
    // Checked as evaluation casts it: as written, to the column's own type.
    Some(match temporal_array(s, other) {
        Some(_) => Ok(()),
        None => Err(format!("'{s}' is not a value of {other} (write YYYY-MM-DD)")),
    })
}

pub(crate) fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Dates and timestamps.
pub(crate) fn is_temporal(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Date64 | DataType::Timestamp(..))
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
            Expr::Lit(l @ Lit::Date(_)) => write!(f, "date '{}'", temporal_text(l)),
            Expr::Lit(l @ Lit::Timestamp(_)) => write!(f, "timestamp '{}'", temporal_text(l)),
            Expr::Lit(Lit::Interval { months, days, nanos }) => {
                write!(f, "interval '{}'", interval_text(*months, *days, *nanos))
            }
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::IsNull(e) => write!(f, "is_null({e})"),
            Expr::FillNull(e, v) => write!(f, "fill_null({e}, {v})"),
            Expr::Cast(e, t) => write!(f, "cast({e} as {t})"),
            Expr::Str(StrOp::Contains, e, p) => write!(f, "contains({e}, '{p}')"),
            Expr::Str(StrOp::StartsWith, e, p) => write!(f, "starts_with({e}, '{p}')"),
            Expr::Str(StrOp::Like, e, p) => write!(f, "({e} like '{p}')"),
            Expr::Str(StrOp::ILike, e, p) => write!(f, "({e} ilike '{p}')"),
            Expr::Case { when, otherwise } => {
                write!(f, "case")?;
                for (c, v) in when {
                    write!(f, " when {c} then {v}")?;
                }
                if let Some(e) = otherwise {
                    write!(f, " else {e}")?;
                }
                write!(f, " end")
            }
            Expr::Call(func, args) => {
                let args: Vec<String> = args.iter().map(ToString::to_string).collect();
                write!(f, "{}({})", func.name(), args.join(", "))
            }
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
        Lit::Date(_) => DataType::Date32,
        Lit::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
        Lit::Interval { .. } => DataType::Interval(IntervalUnit::MonthDayNano),
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

fn finer(a: TimeUnit, b: TimeUnit) -> TimeUnit {
    let rank = |u: TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
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
        // A date meets a timestamp at midnight; timestamps meet at the finer unit.
        (Date32, Timestamp(u, tz)) | (Timestamp(u, tz), Date32) => Timestamp(*u, tz.clone()),
        (Timestamp(u1, tz1), Timestamp(u2, tz2)) if tz1 == tz2 => {
            Timestamp(finer(*u1, *u2), tz1.clone())
        }
        _ => return None,
    })
}
