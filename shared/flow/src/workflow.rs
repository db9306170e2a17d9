//! Resumable multi-step workflows.
//!
//! A [`Workflow`] is a handler made of ordered [`Step`]s. A step reads what
//! it needs (the event, the outputs of the steps before it, the state store)
//! and returns its output and its effects — records to put or counters to
//! add — without writing anything itself. The engine commits the step's
//! effects together with the run's progress in one atomic write, on the
//! condition that the run still stands at that step. So:
//!
//! - steps run in order, and progress is persisted after each;
//! - a retry (after a crash, a failure, or a duplicate message) resumes at
//!   the first step not committed, and never repeats a committed one;
//! - each step's effects happen exactly once, even when two deliveries of
//!   the same event race: the loser's commit fails its condition, and it
//!   carries on from where the winner got to.
//!
//! A step that must call the outside world (a payment provider, say) passes
//! [`StepContext::idempotency_key`] along, which is the same on every try
//! of that step of that run.

use crate::consumer::{BoxFuture, Handler, HandlerError};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::envelope::Envelope;
use switchyard_core::error::PortError;
use switchyard_core::ids::{EventId, TenantId};
use time::OffsetDateTime;

/// A state-store record a step reads or writes: a `kind` (`STOCK`,
/// `SHIPPING_RATE`) and an id within the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordRef {
    /// The record's kind, such as `STOCK`.
    pub kind: String,
    /// The record's id within its kind and tenant.
    pub id: String,
}

impl RecordRef {
    /// The record of this kind and id.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
        }
    }
}

/// A write a step asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Puts (replaces) a record.
    Put {
        /// The record to put.
        record: RecordRef,
        /// Its fields, all of them.
        fields: Map<String, Value>,
    },
    /// Adds `delta` to a numeric field of a record (created at 0).
    Add {
        /// The record to change.
        record: RecordRef,
        /// The numeric field to add to.
        field: String,
        /// What to add (negative to take away).
        delta: i64,
    },
}

/// Reads the tenant's records (what steps look up).
pub trait StateReader: Send + Sync {
    /// The fields of the tenant's record, or `None` if there is none.
    fn get<'a>(
        &'a self,
        tenant: &'a TenantId,
        record: &'a RecordRef,
    ) -> BoxFuture<'a, Result<Option<Map<String, Value>>, PortError>>;
}

/// Names one run: a workflow over one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunKey {
    /// The event's tenant.
    pub tenant: TenantId,
    /// The event the workflow runs over.
    pub event: EventId,
    /// The workflow's name.
    pub workflow: String,
}

/// Where a run stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    /// The index of the first step not committed.
    pub next_step: usize,
    /// Each committed step's output, by step name.
    pub outputs: Map<String, Value>,
}

/// One step's commit: its effects and the run's progress, written together
/// if and only if the run still stands at `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCommit {
    /// The index of the step committed; the run must stand at it.
    pub step: usize,
    /// The step's name.
    pub step_name: String,
    /// The run's outputs including this step's.
    pub outputs: Map<String, Value>,
    /// The writes the step asked for.
    pub effects: Vec<Effect>,
    /// Whether this was the last step (the run is then complete).
    pub last: bool,
    /// When the commit is made.
    pub now: OffsetDateTime,
    /// When the run's record may be deleted.
    pub expires_at: OffsetDateTime,
}

/// Whether a commit took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The effects and the progress are written.
    Yes,
    /// The run was not at that step any more (someone else committed it).
    Conflict,
}

/// A failed step, recorded on the run for operators.
#[derive(Debug, Clone, PartialEq)]
pub struct StepFailure {
    /// The index of the step that failed.
    pub step: usize,
    /// The step's name.
    pub step_name: String,
    /// What went wrong.
    pub error: String,
    /// Whether the step will be tried again.
    pub retryable: bool,
    /// When it failed.
    pub now: OffsetDateTime,
    /// When the run's record may be deleted.
    pub expires_at: OffsetDateTime,
}

/// Runs' progress and the effects of their steps.
pub trait WorkflowStore: StateReader {
    /// Where the run stands, or `None` if it has not started.
    fn load_run<'a>(&'a self, key: &'a RunKey) -> BoxFuture<'a, Result<Option<RunState>, PortError>>;
    /// Writes the commit atomically (see [`StepCommit`]).
    fn commit_step<'a>(
        &'a self,
        key: &'a RunKey,
        commit: &'a StepCommit,
    ) -> BoxFuture<'a, Result<Committed, PortError>>;
    /// Notes a failure on the run without moving its progress.
    fn record_failure<'a>(&'a self, key: &'a RunKey, failure: &'a StepFailure) -> BoxFuture<'a, Result<(), PortError>>;
}

/// What a step sees.
pub struct StepContext<'a> {
    /// The event the workflow runs over.
    pub event: &'a Envelope,
    /// The outputs of the steps before this one, by step name.
    pub outputs: &'a Map<String, Value>,
    /// The tenant's records, to read.
    pub state: &'a dyn StateReader,
    /// The same on every try of this step of this run.
    pub idempotency_key: String,
}

impl StepContext<'_> {
    /// A field of an earlier step's output.
    pub fn output(&self, step: &str, field: &str) -> Option<&Value> {
        self.outputs.get(step).and_then(|o| o.get(field))
    }
}

/// What a step produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepResult {
    /// The step's output, which later steps read by the step's name.
    pub output: Map<String, Value>,
    /// The writes to commit with the step (at most [`MAX_EFFECTS_PER_STEP`]).
    pub effects: Vec<Effect>,
}

/// One step of a workflow.
pub trait Step: Send + Sync {
    /// Stable: it names the step's output and idempotency key.
    fn name(&self) -> &str;
    /// Runs the step; its effects are committed only if it succeeds.
    fn run<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>>;
}

/// The signature of a step written as a plain function.
pub type StepFn = for<'a> fn(&'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>>;

/// A step made of a name and a function.
pub struct FnStep {
    /// The step's name (see [`Step::name`]).
    pub name: &'static str,
    /// The step's function.
    pub run: StepFn,
}

impl Step for FnStep {
    fn name(&self) -> &str {
        self.name
    }
    fn run<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
        (self.run)(cx)
    }
}

/// A workflow: ordered steps over a store.
pub struct Workflow<S> {
    name: String,
    steps: Vec<Box<dyn Step>>,
    store: Arc<S>,
    /// How long a run's record is kept after its last change.
    retention: Duration,
}

/// Most effects one step may ask for (the store's atomic write has room
/// for a hundred items with the run's own).
pub const MAX_EFFECTS_PER_STEP: usize = 99;

impl<S: WorkflowStore> Workflow<S> {
    /// A workflow with no steps yet; its runs are kept in `store` for
    /// `retention` after their last change.
    pub fn new(name: impl Into<String>, store: Arc<S>, retention: Duration) -> Self {
        Self {
            name: name.into(),
            steps: Vec::new(),
            store,
            retention,
        }
    }

    /// Adds a step after the ones added before.
    pub fn step(mut self, step: impl Step + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// Adds a step written as a plain function.
    pub fn step_fn(self, name: &'static str, run: StepFn) -> Self {
        self.step(FnStep { name, run })
    }

    /// The steps' names, in order.
    pub fn step_names(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.name()).collect()
    }

    /// Runs the workflow over `event` from where its run stands, to the end
    /// or to the first failing step.
    pub async fn run(&self, event: &Envelope, now: OffsetDateTime) -> Result<(), HandlerError> {
        let key = RunKey {
            tenant: event.tenant_id.clone(),
            event: event.id.clone(),
            workflow: self.name.clone(),
        };
        let expires_at = now + self.retention;
        let mut state = self.store.load_run(&key).await?.unwrap_or_default();
        while let Some(step) = self.steps.get(state.next_step) {
            let i = state.next_step;
            let cx = StepContext {
                event,
                outputs: &state.outputs,
                state: &*self.store,
                idempotency_key: format!("{}:{}:{}:{}", event.tenant_id, event.id, self.name, step.name()),
            };
            let result = match step.run(&cx).await {
                Ok(r) if r.effects.len() > MAX_EFFECTS_PER_STEP => Err(HandlerError::permanent(format!(
                    "step {} asked for {} effects (at most {MAX_EFFECTS_PER_STEP})",
                    step.name(),
                    r.effects.len()
                ))),
                other => other,
            };
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    let failure = StepFailure {
                        step: i,
                        step_name: step.name().to_string(),
                        error: e.message.clone(),
                        retryable: e.retryable,
                        now,
                        expires_at,
                    };
                    if let Err(re) = self.store.record_failure(&key, &failure).await {
                        tracing::warn!(workflow = %self.name, step = step.name(), error = %re, "recording a step failure failed");
                    }
                    return Err(e);
                }
            };
            let mut outputs = state.outputs.clone();
            outputs.insert(step.name().to_string(), Value::Object(result.output));
            let commit = StepCommit {
                step: i,
                step_name: step.name().to_string(),
                outputs,
                effects: result.effects,
                last: i + 1 == self.steps.len(),
                now,
                expires_at,
            };
            match self.store.commit_step(&key, &commit).await? {
                Committed::Yes => {
                    tracing::info!(workflow = %self.name, step = step.name(), event_id = %event.id, tenant_id = %event.tenant_id, "step committed");
                    state = RunState {
                        next_step: i + 1,
                        outputs: commit.outputs,
                    };
                }
                Committed::Conflict => {
                    // Another delivery of the event got there first: carry on
                    // from where it stands now.
                    state = self.store.load_run(&key).await?.unwrap_or_default();
                    if state.next_step <= i {
                        return Err(HandlerError::transient(format!(
                            "run of {} on {} did not move past step {} after a conflict",
                            self.name,
                            event.id,
                            step.name()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

impl<S: WorkflowStore + 'static> Handler for Workflow<S> {
    fn handle<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(self.run(event, switchyard_core::time_util::now_utc()))
    }
}

#[cfg(test)]
#[path = "workflow/tests.rs"]
mod tests;
