//! The trigger index: which current flows listen to which Okta event types (with their compiled
//! `filter`), and which flows are delegated. Rebuilt from the flow store when the flows change in
//! this process ([`TriggerIndex::clear`]) and at most every `max_age` otherwise (deploys made by
//! other processes, such as another Lambda).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::CompiledFlow;
use crate::model::Trigger;
use crate::ports::{FlowStore, StoredFlow};
use crate::template::Compiled;

use super::error::RunnerError;

/// A flow listening to an event type.
pub struct Subscriber {
    pub flow: String,
    /// The version indexed: the one whose filter decides, and the one an event starts.
    pub compiled: Arc<CompiledFlow>,
    /// The compiled `filter`, or why it does not compile.
    pub filter: Option<Result<Compiled, String>>,
}

/// The trigger-related view of the current flows.
#[derive(Default)]
pub struct FlowIndex {
    /// Event type → listening flows, in name order.
    pub events: HashMap<String, Vec<Subscriber>>,
    /// Current delegated flows, in name order.
    pub delegated: Vec<Arc<CompiledFlow>>,
}

impl FlowIndex {
    async fn build(
        flows: &dyn FlowStore,
        compile: impl Fn(&StoredFlow) -> Result<Arc<CompiledFlow>, RunnerError>,
    ) -> Result<FlowIndex, RunnerError> {
        let mut stored = flows.list().await?;
        stored.sort_by(|a, b| a.name.cmp(&b.name));
        let mut index = FlowIndex::default();
        for s in stored {
            let compiled = match compile(&s) {
                Ok(c) => c,
                Err(error @ (RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. })) => {
                    tracing::warn!(flow = %s.name, error = %error, "flow skipped by the trigger index");
                    continue;
                }
                Err(other) => return Err(other),
            };
            match &compiled.flow.trigger {
                Trigger::Event(event) => {
                    let filter = event.filter.as_deref().map(|f| {
                        Compiled::text(f).map_err(|e| format!("`trigger.event.filter`: {e}"))
                    });
                    for event_type in &event.okta {
                        index
                            .events
                            .entry(event_type.clone())
                            .or_default()
                            .push(Subscriber {
                                flow: s.name.clone(),
                                compiled: compiled.clone(),
                                // Compiled trees are one `Arc`; cloning per type is cheap.
                                filter: filter.clone(),
                            });
                    }
                }
                Trigger::Delegated(_) => index.delegated.push(compiled.clone()),
                _ => {}
            }
        }
        Ok(index)
    }
}

/// The cached [`FlowIndex`] of a runtime.
#[derive(Default)]
pub struct TriggerIndex {
    /// Bumped by every [`TriggerIndex::clear`], so an index built from a listing made before a
    /// deploy is never stored after it.
    generation: AtomicU64,
    slot: Mutex<Option<(u64, Instant, Arc<FlowIndex>)>>,
}

impl TriggerIndex {
    /// Forgets the index (the flows changed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The index, rebuilt from `flows` (each compiled with `compile`) when cleared or older than
    /// `max_age`.
    pub async fn get(
        &self,
        flows: &dyn FlowStore,
        max_age: Duration,
        compile: impl Fn(&StoredFlow) -> Result<Arc<CompiledFlow>, RunnerError>,
    ) -> Result<Arc<FlowIndex>, RunnerError> {
        let generation = self.generation.load(Ordering::SeqCst);
        {
            let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((built_for, at, index)) = slot.as_ref()
                && *built_for == generation
                && at.elapsed() < max_age
            {
                return Ok(index.clone());
            }
        }
        let index = Arc::new(FlowIndex::build(flows, compile).await?);
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            *slot = Some((generation, Instant::now(), index.clone()));
        }
        Ok(index)
    }
}
