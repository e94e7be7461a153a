//! Evaluating an expression on a record batch with Arrow's kernels: literals stay
//! one-row scalars until an operation needs a full column.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Datum, Float64Array, Int64Array, RecordBatch, Scalar,
    StringArray, new_null_array,
};
use arrow::compute::kernels::{boolean, cmp, numeric};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use arrow::error::ArrowError;

use arrow::array::{Date32Array, IntervalMonthDayNanoArray, TimestampMicrosecondArray};
use arrow::compute::kernels::temporal::{DatePart, date_part};
use arrow::compute::kernels::zip::zip;
use arrow::datatypes::IntervalMonthDayNano;

use super::{
    BinOp, Expr, Func, Lit, StrOp, common, in_type, is_temporal, is_text, lit_type,
    temporal_arithmetic,
};

impl Expr {
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
                    BinOp::Add | BinOp::Sub
                        if temporal_arithmetic(*op, l.data_type(), r.data_type()).is_some() =>
                    {
                        let scalar = matches!((&l, &r), (Val::Scalar(_), Val::Scalar(_)));
                        let (l, r) = if l.data_type() == &DataType::Date32
                            && r.data_type() == &DataType::Date32
                        {
                            // Days between dates: as integers.
                            (
                                l.cast(&DataType::Int32)?.cast(&DataType::Int64)?,
                                r.cast(&DataType::Int32)?.cast(&DataType::Int64)?,
                            )
                        } else {
                            (l, r)
                        };
                        let (ld, rd) = (l.datum(), r.datum());
                        let (ld, rd): (&dyn Datum, &dyn Datum) = (ld.as_ref(), rd.as_ref());
                        let out = if *op == BinOp::Add {
                            numeric::add_wrapping(ld, rd)?
                        } else {
                            numeric::sub_wrapping(ld, rd)?
                        };
                        if scalar { Val::Scalar(out) } else { Val::Array(out) }
                    }
                    _ => {
                        let target = if *op == BinOp::Div {
                            DataType::Float64
                        } else if let Some(t) = common(l.data_type(), r.data_type()) {
                            t
                        } else if is_temporal(l.data_type()) && is_text(r.data_type()) {
                            l.data_type().clone()
                        } else if is_temporal(r.data_type()) && is_text(l.data_type()) {
                            r.data_type().clone()
                        } else {
                            return Err(ArrowError::InvalidArgumentError("type mismatch".into()));
                        };
                        // A date literal written as text converts or fails; other
                        // casts are as before.
                        let cast = |v: Val| {
                            if is_text(v.data_type()) && is_temporal(&target) {
                                v.cast_strict(&target)
                            } else {
                                v.cast(&target)
                            }
                        };
                        let (l, r) = (cast(l)?, cast(r)?);
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
                Val::Array(zip(&mask, &a, &fill)?)
            }
            Expr::Cast(e, to) => {
                let to: DataType = to.parse()?;
                e.eval(batch)?.cast(&to)?
            }
            Expr::Str(op, e, pattern) => {
                let a = e.eval(batch)?.into_array(batch.num_rows())?;
                // Large or view strings compared as plain ones, as the pattern is.
                let a = arrow::compute::cast(&a, &DataType::Utf8)?;
                let pat = Scalar::new(StringArray::from(vec![pattern.as_str()]));
                use arrow::compute::kernels::comparison as c;
                let out = match op {
                    StrOp::Contains => c::contains(&a, &pat)?,
                    StrOp::StartsWith => c::starts_with(&a, &pat)?,
                    StrOp::Like => c::like(&a, &pat)?,
                    StrOp::ILike => c::ilike(&a, &pat)?,
                };
                Val::Array(Arc::new(out))
            }
            Expr::In(e, values) => {
                let a = e.eval(batch)?.into_array(batch.num_rows())?;
                Val::Array(Arc::new(is_in(&a, values)?))
            }
            Expr::Case { when, otherwise } => {
                let n = batch.num_rows();
                let mut values = Vec::with_capacity(when.len() + 1);
                let mut target = DataType::Null;
                for (_, v) in when {
                    let v = v.eval(batch)?;
                    target = common(&target, v.data_type()).ok_or_else(mismatch)?;
                    values.push(v);
                }
                let rest = match otherwise {
                    Some(e) => e.eval(batch)?,
                    None => Val::Scalar(new_null_array(&DataType::Null, 1)),
                };
                target = common(&target, rest.data_type()).ok_or_else(mismatch)?;
                // From the last branch to the first, so the first true one wins.
                let mut out = rest.cast(&target)?.into_array(n)?;
                for ((c, _), v) in when.iter().zip(values).rev() {
                    let c = c.eval(batch)?.into_array(n)?;
                    if c.data_type() == &DataType::Null {
                        // Never true: the branch is never taken.
                        continue;
                    }
                    let c = as_bool(&c)?;
                    // A null condition is not true.
                    let c = match c.nulls() {
                        Some(nulls) => BooleanArray::new(c.values() & nulls.inner(), None),
                        None => c.clone(),
                    };
                    let v = v.cast(&target)?.into_array(n)?;
                    out = zip(&c, &v, &out)?;
                }
                Val::Array(out)
            }
            Expr::Call(f, args) => {
                let vals = args.iter().map(|a| a.eval(batch)).collect::<Result<Vec<_>, _>>()?;
                call(*f, args, vals, batch.num_rows())?
            }
        })
    }
}

fn mismatch() -> ArrowError {
    ArrowError::InvalidArgumentError("type mismatch".into())
}

/// `f` of `vals` (the evaluated `args`) on `n` rows.
fn call(f: Func, args: &[Expr], vals: Vec<Val>, n: usize) -> Result<Val, ArrowError> {
    let scalar = vals.iter().all(|v| matches!(v, Val::Scalar(_)));
    let rows = if scalar { 1 } else { n };
    let wrap = |a: ArrayRef| if scalar { Val::Scalar(a) } else { Val::Array(a) };
    let mut vals = vals.into_iter();
    let first = vals.next().ok_or_else(mismatch)?;
    Ok(match f {
        Func::Coalesce => {
            let mut target = first.data_type().clone();
            let rest: Vec<Val> = vals.collect();
            for v in &rest {
                target = common(&target, v.data_type()).ok_or_else(mismatch)?;
            }
            let mut out = first.cast(&target)?.into_array(rows)?;
            for v in rest {
                if out.null_count() == 0 {
                    break;
                }
                let v = v.cast(&target)?.into_array(rows)?;
                out = zip(&boolean::is_not_null(&out)?, &out, &v)?;
            }
            wrap(out)
        }
        Func::Abs | Func::Round => {
            let decimals = match args.get(1) {
                Some(Expr::Lit(Lit::Int(d))) => *d,
                _ => 0,
            };
            let t = first.data_type().clone();
            let a = first.into_array(rows)?;
            if t == DataType::Null {
                return Ok(wrap(a));
            }
            if t.is_integer() {
                let a = arrow::compute::cast(&a, &DataType::Int64)?;
                let a = a.as_primitive::<Int64Type>();
                let out: Int64Array = if f == Func::Abs {
                    a.unary(i64::wrapping_abs)
                } else if decimals >= 0 {
                    a.clone()
                } else {
                    // Past 10^18 every i64 rounds to 0.
                    let unit =
                        10i64.checked_pow(decimals.unsigned_abs().min(19) as u32).unwrap_or(0);
                    a.unary(|v| round_int(v, unit))
                };
                wrap(Arc::new(out))
            } else {
                let a = arrow::compute::cast(&a, &DataType::Float64)?;
                let a = a.as_primitive::<Float64Type>();
                let out: Float64Array = if f == Func::Abs {
                    a.unary(f64::abs)
                } else {
                    a.unary(|v| round_float(v, decimals))
                };
                wrap(Arc::new(out))
            }
        }
        Func::Lower | Func::Upper | Func::Length => {
            let a = first.into_array(rows)?;
            let a = arrow::compute::cast(&a, &DataType::Utf8)?;
            let a = a.as_string::<i32>();
            let out: ArrayRef = match f {
                Func::Lower => {
                    Arc::new(a.iter().map(|s| s.map(str::to_lowercase)).collect::<StringArray>())
                }
                Func::Upper => {
                    Arc::new(a.iter().map(|s| s.map(str::to_uppercase)).collect::<StringArray>())
                }
                _ => Arc::new(
                    a.iter().map(|s| s.map(|s| s.chars().count() as i64)).collect::<Int64Array>(),
                ),
            };
            wrap(out)
        }
        Func::Year | Func::Month | Func::Day => {
            let a = first.into_array(rows)?;
            if a.data_type() == &DataType::Null {
                return Ok(wrap(new_null_array(&DataType::Int64, rows)));
            }
            let part = match f {
                Func::Year => DatePart::Year,
                Func::Month => DatePart::Month,
                _ => DatePart::Day,
            };
            let out = date_part(&a, part)?;
            wrap(arrow::compute::cast(&out, &DataType::Int64)?)
        }
    })
}

/// `v` rounded to a multiple of `unit` (a power of ten; 0 when past i64: then 0),
/// halves away from zero.
fn round_int(v: i64, unit: i64) -> i64 {
    if unit == 0 {
        return 0;
    }
    let r = v % unit;
    let down = v - r;
    if r.unsigned_abs() * 2 >= unit.unsigned_abs() {
        // Saturating: the nearest multiple past i64's range is its end.
        if v >= 0 { down.saturating_add(unit) } else { down.saturating_sub(unit) }
    } else {
        down
    }
}

/// `v` rounded to `decimals` decimals, halves away from zero (SQL's `round`).
fn round_float(v: f64, decimals: i64) -> f64 {
    if !v.is_finite() {
        return v;
    }
    let d = decimals.clamp(-400, 400) as i32;
    let scale = 10f64.powi(d);
    if !scale.is_finite() || scale == 0.0 {
        return if scale == 0.0 { 0.0 * v } else { v };
    }
    let scaled = v * scale;
    if !scaled.is_finite() {
        return v;
    }
    scaled.round() / scale
}

/// Whether each value of `a` is one of `values`: one hash lookup per row.
fn is_in(a: &ArrayRef, values: &[Lit]) -> std::result::Result<BooleanArray, ArrowError> {
    let mismatch = || ArrowError::InvalidArgumentError("'in': type mismatch".into());
    // UInt64 values past Int64's range stay themselves: compared as u64 when
    // every value of the list is a (non-negative, else unmatched) integer.
    if a.data_type() == &DataType::UInt64
        && values.iter().all(|v| matches!(v, Lit::Int(_) | Lit::Null))
    {
        let set: HashSet<u64> = values
            .iter()
            .filter_map(|v| if let Lit::Int(i) = v { u64::try_from(*i).ok() } else { None })
            .collect();
        let a = a.as_primitive::<UInt64Type>();
        return Ok(a.iter().map(|x| x.map(|x| set.contains(&x))).collect());
    }
    let mut t = a.data_type().clone();
    for v in values {
        t = common(&t, &lit_type(v)).ok_or_else(mismatch)?;
    }
    let t = in_type(&t).ok_or_else(mismatch)?;
    let a = arrow::compute::cast(a, &t)?;
    Ok(match t {
        DataType::Utf8 => {
            let set: HashSet<&str> = values
                .iter()
                .filter_map(|v| if let Lit::Str(s) = v { Some(s.as_str()) } else { None })
                .collect();
            a.as_string::<i32>().iter().map(|x| x.map(|x| set.contains(x))).collect()
        }
        DataType::Int64 => {
            let set: HashSet<i64> = values
                .iter()
                .filter_map(|v| if let Lit::Int(i) = v { Some(*i) } else { None })
                .collect();
            a.as_primitive::<Int64Type>().iter().map(|x| x.map(|x| set.contains(&x))).collect()
        }
        DataType::Float64 => {
            // Compared by bits, with -0.0 as 0.0; NaN equals nothing, as in `==`.
            let key = |x: f64| if x == 0.0 { 0u64 } else { x.to_bits() };
            let set: HashSet<u64> = values
                .iter()
                .filter_map(|v| match v {
                    Lit::Int(i) => Some(*i as f64),
                    Lit::Float(x) => Some(*x),
                    _ => None,
                })
                .filter(|x| !x.is_nan())
                .map(key)
                .collect();
            a.as_primitive::<Float64Type>()
                .iter()
                .map(|x| x.map(|x| set.contains(&key(x))))
                .collect()
        }
        DataType::Boolean => {
            let set: HashSet<bool> = values
                .iter()
                .filter_map(|v| if let Lit::Bool(b) = v { Some(*b) } else { None })
                .collect();
            a.as_boolean().iter().map(|x| x.map(|x| set.contains(&x))).collect()
        }
        _ => BooleanArray::new_null(a.len()),
    })
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

    /// Cast that fails on a value that does not convert (a date literal that is
    /// not a date), instead of making it null.
    fn cast_strict(self, to: &DataType) -> std::result::Result<Val, ArrowError> {
        if self.data_type() == to {
            return Ok(self);
        }
        let strict = arrow::compute::CastOptions { safe: false, ..Default::default() };
        Ok(match self {
            Val::Array(a) => Val::Array(arrow::compute::cast_with_options(&a, to, &strict)?),
            Val::Scalar(a) => Val::Scalar(arrow::compute::cast_with_options(&a, to, &strict)?),
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

fn lit_array(l: &Lit) -> ArrayRef {
    match l {
        Lit::Null => new_null_array(&DataType::Null, 1),
        Lit::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Lit::Int(i) => Arc::new(Int64Array::from(vec![*i])),
        Lit::Float(x) => Arc::new(Float64Array::from(vec![*x])),
        Lit::Str(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Lit::Date(d) => Arc::new(Date32Array::from(vec![*d])),
        Lit::Timestamp(t) => Arc::new(TimestampMicrosecondArray::from(vec![*t])),
        Lit::Interval { months, days, nanos } => {
            Arc::new(IntervalMonthDayNanoArray::from(vec![IntervalMonthDayNano::new(
                *months, *days, *nanos,
            )]))
        }
    }
}

fn as_bool(a: &ArrayRef) -> std::result::Result<&BooleanArray, ArrowError> {
    a.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!("expected booleans, got {}", a.data_type()))
    })
}
