//! Random DAGs and an eager reference evaluator shared by the scheduler tests.

#![allow(dead_code, unreachable_pub)]

use brisk_core::{Key, Op, Scalar, Value};
use brisk_graph::{Graph, Task};

/// A random DAG: task `i` depends on `deps[i]`, all earlier than `i`.
#[derive(Clone, Debug)]
pub struct Dag {
    pub deps: Vec<Vec<usize>>,
    pub outputs: Vec<usize>,
}

pub fn key(i: usize) -> Key {
    Key::new("t", [i as u32])
}

/// What task `i` computes from its inputs: order-sensitive, float arithmetic
/// included, so any mix-up of inputs or of their order changes the result.
pub fn combine(i: usize, inputs: &[f64]) -> f64 {
    inputs.iter().enumerate().fold(i as f64 * 0.1 + 1.0, |acc, (pos, x)| {
        (acc * 1.000_000_1 + x / (pos as f64 + 1.5)).sin() * 1e3
    })
}

pub fn op(i: usize) -> Op {
    Op::local(format!("f{i}"), move |inputs: Vec<Value>| {
        let xs: Vec<f64> = inputs
            .iter()
            .map(|v| match v {
                Value::Scalar(Scalar::F64(x)) => *x,
                other => panic!("unexpected input {other:?}"),
            })
            .collect();
        Ok(Value::from(combine(i, &xs)))
    })
}

pub fn graph(dag: &Dag) -> Graph {
    Graph::from_tasks(
        dag.deps
            .iter()
            .enumerate()
            .map(|(i, deps)| Task::new(key(i), op(i), deps.iter().map(|&d| key(d)))),
    )
    .unwrap()
}

pub fn output_keys(dag: &Dag) -> Vec<Key> {
    dag.outputs.iter().map(|&o| key(o)).collect()
}

/// The eager reference: every task in index order on plain floats.
pub fn reference(dag: &Dag) -> Vec<f64> {
    let mut values: Vec<f64> = Vec::with_capacity(dag.deps.len());
    for (i, deps) in dag.deps.iter().enumerate() {
        let xs: Vec<f64> = deps.iter().map(|&d| values[d]).collect();
        values.push(combine(i, &xs));
    }
    dag.outputs.iter().map(|&o| values[o]).collect()
}

pub fn floats(values: &[Value]) -> Vec<u64> {
    values
        .iter()
        .map(|v| match v {
            Value::Scalar(Scalar::F64(x)) => x.to_bits(),
            other => panic!("unexpected output {other:?}"),
        })
        .collect()
}

pub fn dag_strategy() -> impl proptest::strategy::Strategy<Value = Dag> {
    use proptest::prelude::*;
    (1usize..120).prop_flat_map(|n| {
        let deps = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(Vec::new()).boxed()
                } else {
                    proptest::collection::vec(0..i, 0..5).boxed()
                }
            })
            .collect::<Vec<_>>();
        (deps, proptest::collection::vec(0..n, 1..6))
            .prop_map(|(deps, outputs)| Dag { deps, outputs })
    })
}
