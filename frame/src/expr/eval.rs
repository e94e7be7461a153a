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

use super::{BinOp, Expr, Lit, StrOp, common, in_type, lit_type};

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
            Expr::In(e, values) => {
                let a = e.eval(batch)?.into_array(batch.num_rows())?;
                Val::Array(Arc::new(is_in(&a, values)?))
            }
        })
    }
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
    }
}

fn as_bool(a: &ArrayRef) -> std::result::Result<&BooleanArray, ArrowError> {
    a.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!("expected booleans, got {}", a.data_type()))
    })
}
