//! The collection protocol: what a lazy value tells a scheduler so it can be computed.

use brisk_core::{Key, Value};

use crate::{Graph, GraphBuilder, Result};

/// A lazy value that can be computed: Brisk's version of Dask's collection protocol
/// (`__dask_graph__`, `__dask_keys__`, `__dask_postcompute__`).
///
/// Tuples and vectors of collections are collections too; computing them together
/// merges their graphs, so work they share runs once.
pub trait Collection {
    /// What computing it gives.
    type Output;

    /// Adds the tasks it needs to `graph`, stopping where a key is already there.
    fn add_tasks(&self, graph: &mut GraphBuilder);

    /// The keys whose values [`finish`](Self::finish) needs, in order.
    fn output_keys(&self) -> Vec<Key>;

    /// Turns the values of [`output_keys`](Self::output_keys) into the output.
    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output>;

    /// Its whole graph and output keys.
    ///
    /// ```
    /// use brisk_graph::{Collection, delayed::Delayed};
    /// let x = Delayed::value(2_i64);
    /// let (graph, keys) = x.graph()?;
    /// assert_eq!((graph.len(), keys.len()), (1, 1));
    /// # Ok::<(), brisk_graph::Error>(())
    /// ```
    fn graph(&self) -> Result<(Graph, Vec<Key>)> {
        let mut builder = GraphBuilder::new();
        self.add_tasks(&mut builder);
        Ok((builder.finish()?, self.output_keys()))
    }
}

impl<C: Collection + ?Sized> Collection for &C {
    type Output = C::Output;
    fn add_tasks(&self, graph: &mut GraphBuilder) {
        (**self).add_tasks(graph)
    }
    fn output_keys(&self) -> Vec<Key> {
        (**self).output_keys()
    }
    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output> {
        (**self).finish(values)
    }
}

impl<C: Collection> Collection for [C] {
    type Output = Vec<C::Output>;
    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.iter().for_each(|c| c.add_tasks(graph));
    }
    fn output_keys(&self) -> Vec<Key> {
        self.iter().flat_map(C::output_keys).collect()
    }
    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output> {
        let mut values = values.into_iter();
        self.iter()
            .map(|c| c.finish(values.by_ref().take(c.output_keys().len()).collect()))
            .collect()
    }
}

impl<C: Collection> Collection for Vec<C> {
    type Output = Vec<C::Output>;
    fn add_tasks(&self, graph: &mut GraphBuilder) {
        self.as_slice().add_tasks(graph)
    }
    fn output_keys(&self) -> Vec<Key> {
        self.as_slice().output_keys()
    }
    fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output> {
        self.as_slice().finish(values)
    }
}

macro_rules! tuple_collection {
    ($($c:ident),+) => {
        impl<$($c: Collection),+> Collection for ($($c,)+) {
            type Output = ($($c::Output,)+);
            #[allow(non_snake_case)]
            fn add_tasks(&self, graph: &mut GraphBuilder) {
                let ($($c,)+) = self;
                $($c.add_tasks(graph);)+
            }
            #[allow(non_snake_case)]
            fn output_keys(&self) -> Vec<Key> {
                let ($($c,)+) = self;
                let mut keys = Vec::new();
                $(keys.extend($c.output_keys());)+
                keys
            }
            #[allow(non_snake_case)]
            fn finish(&self, values: Vec<Value>) -> brisk_core::Result<Self::Output> {
                let ($($c,)+) = self;
                let mut values = values.into_iter();
                Ok(($($c.finish(values.by_ref().take($c.output_keys().len()).collect())?,)+))
            }
        }
    };
}
tuple_collection!(A);
tuple_collection!(A, B);
tuple_collection!(A, B, C);
tuple_collection!(A, B, C, D);
tuple_collection!(A, B, C, D, E);
tuple_collection!(A, B, C, D, E, F);
