//! The progress bar: drawn from the scheduler's task events, on a terminal or as
//! plain lines.

use std::io::IsTerminal;
use std::sync::Arc;

use brisk::scheduler::Callback;
use clap::ValueEnum;

use crate::failure::Failure;

/// When to draw the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Progress {
    /// When standard error is a terminal.
    Auto,
    /// Always (on standard error).
    Always,
    /// Never.
    Never,
}

impl Progress {
    /// The bar for a compute reading `total_bytes()`, when one should be drawn (the
    /// input is sized only then).
    pub(crate) fn bar(
        self,
        total_bytes: impl FnOnce() -> u64,
    ) -> Result<Option<Arc<dyn Callback>>, Failure> {
        let show = match self {
            Progress::Never => false,
            Progress::Always => true,
            Progress::Auto => std::io::stderr().is_terminal(),
        };
        if !show {
            return Ok(None);
        }
        Ok(Some(Arc::new(brisk::diagnostics::ProgressBar::new(Some(total_bytes())))))
    }
}
