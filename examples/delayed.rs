//! # Delayed: lazy function calls, step by step
//!
//! Run with `cargo run --release --example delayed`. Each step prints what it built
//! and what it computed.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use brisk::graph::Collection;
use brisk::prelude::*;

fn square(x: i64) -> i64 {
    x * x
}

fn add(a: i64, b: i64) -> i64 {
    a + b
}

fn total(xs: Vec<i64>) -> i64 {
    xs.iter().sum()
}

fn parse(s: String) -> Result<i64, std::num::ParseIntError> {
    s.trim().parse()
}

fn heading(n: u32, title: &str) {
    println!("\n## Step {n}: {title}\n");
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("# Brisk delayed demo");

    heading(1, "build a lazy computation (nothing runs yet)");
    let a = delayed!(square(2));
    let b = delayed!(square(3));
    let sum = delayed!(add(a.clone(), b.clone()));
    println!("a   = delayed!(square(2))  -> key {}", a.key());
    println!("b   = delayed!(square(3))  -> key {}", b.key());
    println!("sum = delayed!(add(a, b))  -> key {}", sum.key());
    println!("the graph of `sum` has {} tasks", sum.graph_len());

    heading(2, "inspect the task graph (Graphviz DOT)");
    let (graph, _) = sum.graph()?;
    print!("{}", graph.to_dot());

    heading(3, "compute");
    let value = sum.compute()?;
    println!("sum.compute() = {value}   (2² + 3² = 13)");
    assert_eq!(value, 13);

    heading(4, "compute several values at once: shared work runs once");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = Arc::clone(&calls);
        move |x: i64| {
            calls.fetch_add(1, Ordering::SeqCst);
            square(x)
        }
    };
    let shared = brisk::delayed::call1("counted_square", counted, 12);
    let plus_one = shared.map(|x| x + 1);
    let minus_one = shared.map(|x| x - 1);
    let (p, m) = brisk::compute((&plus_one, &minus_one))?;
    println!(
        "12² + 1 = {p}, 12² - 1 = {m}; counted_square ran {} time(s)",
        calls.load(Ordering::SeqCst)
    );

    heading(5, "many small tasks: a tree sum of 100,000 delayed calls");
    let n = 100_000;
    let started = Instant::now();
    let mut level: Vec<Delayed<i64>> = (0..n).map(|i| delayed!(square(i))).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [x, y] => delayed!(add(x, y)),
                [x] => x.clone(),
                _ => unreachable!(),
            })
            .collect();
    }
    let root = level.pop().expect("one root");
    let built = started.elapsed();
    let tasks = root.graph_len();
    let started = Instant::now();
    let value = root.compute()?;
    let ran = started.elapsed();
    let want: i64 = (0..n).map(square).sum();
    println!(
        "built {tasks} tasks in {built:.2?}; computed {value} in {ran:.2?} ({:.2} µs per task)",
        ran.as_secs_f64() * 1e6 / tasks as f64
    );
    assert_eq!(value, want);

    heading(6, "a list argument: one task over many inputs");
    let parts: Vec<Delayed<i64>> = (1..=10).map(|i| delayed!(square(i))).collect();
    let s = delayed!(total(parts));
    println!("total([1², ..., 10²]) = {}", s.compute()?);

    heading(7, "errors name the task that failed");
    let bad = delayed!(try parse("12x".to_string()));
    let doubled = bad.map(|x| 2 * x);
    match doubled.compute() {
        Ok(v) => println!("unexpected success: {v}"),
        Err(e) => println!(
            "error: {e}\n(failing task: {})",
            e.task_key().map(|k| k.to_string()).unwrap_or_default()
        ),
    }

    println!("\nDone. Next: brisk's arrays and dataframes build the same kind of graph.");
    Ok(())
}
