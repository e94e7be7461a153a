//! Parquet without the `parquet` feature: the same entry points, each an
//! error naming the feature, so code written for the full crate still builds.

use std::path::Path;

use brisk_scheduler::Scheduler;

use crate::frame::Frame;
use crate::sources::Sources;
use crate::{Error, Result};

/// Reads Parquet files lazily, with the `parquet` feature. This build has it off:
/// every call is [`Error::MissingFeature`].
pub fn read_parquet(sources: impl Into<Sources>, _columns: Option<&[&str]>) -> Result<Frame> {
    let sources: Sources = sources.into();
    Err(Error::MissingFeature { what: format!("reading {}", sources.given()), feature: "parquet" })
}

impl Frame {
    /// Writes the frame as Parquet, with the `parquet` feature. This build has it
    /// off: every call is [`Error::MissingFeature`].
    pub fn to_parquet(&self, path: impl AsRef<Path>) -> Result<usize> {
        self.to_parquet_on(path, brisk_scheduler::default_scheduler())
    }

    /// [`to_parquet`](Self::to_parquet) on a given scheduler; also
    /// [`Error::MissingFeature`] in this build.
    pub fn to_parquet_on(&self, path: impl AsRef<Path>, scheduler: &Scheduler) -> Result<usize> {
        self.to_parquet_with(path, &crate::StorageOptions::default(), scheduler)
    }

    /// [`to_parquet_on`](Self::to_parquet_on) with object-store settings; also
    /// [`Error::MissingFeature`] in this build.
    pub fn to_parquet_with(
        &self,
        path: impl AsRef<Path>,
        _storage: &crate::StorageOptions,
        _scheduler: &Scheduler,
    ) -> Result<usize> {
        Err(Error::MissingFeature {
            what: format!("writing {}", path.as_ref().display()),
            feature: "parquet",
        })
    }
}
