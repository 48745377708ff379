//! A finished top-level unit of work, as the export thread and the trace store take it.

use crate::spans::span_count;
use std::sync::Arc;
use tta_core::report::{CallReport, WorkflowReport};

/// A finished top-level unit of work, handed to the export thread.
#[derive(Debug, Clone)]
pub enum Exported {
    /// A primitive call (with its nested calls).
    Call(Arc<CallReport>),
    /// A workflow run (with every call it made).
    Workflow(Arc<WorkflowReport>),
}

impl Exported {
    pub(crate) fn tenant(&self) -> &str {
        match self {
            Exported::Call(r) => &r.tenant,
            Exported::Workflow(r) => &r.tenant,
        }
    }

    pub(crate) fn sampled(&self) -> bool {
        match self {
            Exported::Call(r) => r.ids.sampled,
            Exported::Workflow(r) => r.ids.sampled,
        }
    }

    pub(crate) fn span_count(&self) -> u64 {
        match self {
            Exported::Call(r) => span_count(r),
            Exported::Workflow(r) => 1 + r.spans.len() as u64 + r.calls.iter().map(span_count).sum::<u64>(),
        }
    }

    pub(crate) fn log_count(&self) -> u64 {
        match self {
            Exported::Call(r) => log_count(r),
            Exported::Workflow(r) => 1 + r.calls.iter().map(log_count).sum::<u64>(),
        }
    }
}

/// The log records of a call and its nested calls: the guest's, and one of the call's own.
fn log_count(report: &CallReport) -> u64 {
    1 + report.logs.len() as u64 + report.nested.iter().map(log_count).sum::<u64>()
}
