use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A store in memory with the real store's commit condition.
#[derive(Default)]
struct MemStore {
    runs: Mutex<HashMap<RunKey, RunState>>,
    records: Mutex<HashMap<(String, RecordRef), Map<String, Value>>>,
    failures: Mutex<Vec<StepFailure>>,
    /// Before the next commit, pretend another worker committed that step.
    race_next_commit: AtomicBool,
}

impl StateReader for MemStore {
    fn get<'a>(
        &'a self,
        t: &'a TenantId,
        r: &'a RecordRef,
    ) -> BoxFuture<'a, Result<Option<Map<String, Value>>, PortError>> {
        let v = self.records.lock().unwrap().get(&(t.to_string(), r.clone())).cloned();
        Box::pin(async move { Ok(v) })
    }
}

impl MemStore {
    fn apply(&self, tenant: &TenantId, effects: &[Effect]) {
        let mut records = self.records.lock().unwrap();
        for e in effects {
            match e {
                Effect::Put { record, fields } => {
                    records.insert((tenant.to_string(), record.clone()), fields.clone());
                }
                Effect::Add { record, field, delta } => {
                    let row = records.entry((tenant.to_string(), record.clone())).or_default();
                    let n = row.get(field).and_then(Value::as_i64).unwrap_or(0);
                    row.insert(field.clone(), Value::from(n + delta));
                }
            }
        }
    }

    fn counter(&self, kind: &str, id: &str, field: &str) -> i64 {
        let r = self.records.lock().unwrap();
        r.get(&("t1".to_string(), RecordRef::new(kind, id)))
            .and_then(|m| m.get(field))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

impl WorkflowStore for MemStore {
    fn load_run<'a>(&'a self, key: &'a RunKey) -> BoxFuture<'a, Result<Option<RunState>, PortError>> {
        let v = self.runs.lock().unwrap().get(key).cloned();
        Box::pin(async move { Ok(v) })
    }
    fn commit_step<'a>(&'a self, key: &'a RunKey, c: &'a StepCommit) -> BoxFuture<'a, Result<Committed, PortError>> {
        Box::pin(async move {
            if self.race_next_commit.swap(false, Ordering::SeqCst) {
                // The other worker's identical commit lands first.
                self.apply(&key.tenant, &c.effects);
                self.runs.lock().unwrap().insert(
                    key.clone(),
                    RunState {
                        next_step: c.step + 1,
                        outputs: c.outputs.clone(),
                    },
                );
            }
            let mut runs = self.runs.lock().unwrap();
            let at = runs.get(key).map_or(0, |r| r.next_step);
            if at != c.step {
                return Ok(Committed::Conflict);
            }
            self.apply(&key.tenant, &c.effects);
            runs.insert(
                key.clone(),
                RunState {
                    next_step: c.step + 1,
                    outputs: c.outputs.clone(),
                },
            );
            Ok(Committed::Yes)
        })
    }
    fn record_failure<'a>(&'a self, _key: &'a RunKey, f: &'a StepFailure) -> BoxFuture<'a, Result<(), PortError>> {
        self.failures.lock().unwrap().push(f.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A step that counts its runs, adds 1 to its own counter as its effect,
/// and fails while `fail` is set. Step "b" reads step "a"'s output.
struct Counting {
    name: &'static str,
    runs: AtomicUsize,
    fail: AtomicBool,
}

impl Counting {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            runs: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
        }
    }
}

impl Step for std::sync::Arc<Counting> {
    fn name(&self) -> &str {
        self.name
    }
    fn run<'a>(&'a self, cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(HandlerError::transient(format!("{} is down", self.name)));
            }
            if self.name == "b" {
                assert_eq!(cx.output("a", "seen"), Some(&Value::from("evt_1")));
            }
            assert!(cx.idempotency_key.ends_with(&format!(":flow:{}", self.name)));
            let mut output = Map::new();
            output.insert("seen".into(), Value::from(cx.event.id.to_string()));
            Ok(StepResult {
                output,
                effects: vec![Effect::Add {
                    record: RecordRef::new("COUNT", self.name),
                    field: "n".into(),
                    delta: 1,
                }],
            })
        })
    }
}

fn event() -> Envelope {
    serde_json::from_value(serde_json::json!({
        "id": "evt_1", "type": "order.created", "version": "1.0", "timestamp": "2026-11-29T00:00:00Z",
        "source": "api", "tenant_id": "t1", "data": {}
    }))
    .unwrap()
}

fn flow(store: &Arc<MemStore>, steps: &[Arc<Counting>]) -> Workflow<MemStore> {
    steps.iter().fold(
        Workflow::new("flow", store.clone(), Duration::from_secs(3600)),
        |w, s| w.step(s.clone()),
    )
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

#[tokio::test]
async fn a_failed_step_is_resumed_and_no_step_repeats() {
    let store = Arc::new(MemStore::default());
    let steps: Vec<_> = ["a", "b", "c", "d", "e"].map(|n| Arc::new(Counting::new(n))).into();
    let wf = flow(&store, &steps);
    assert_eq!(wf.step_names(), ["a", "b", "c", "d", "e"]);
    steps[2].fail.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let err = wf.run(&event(), now()).await.unwrap_err();
        assert!(err.retryable && err.message.contains("c is down"));
    }
    let failures = store.failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 2);
    assert_eq!((failures[0].step, failures[0].step_name.as_str()), (2, "c"));
    steps[2].fail.store(false, Ordering::SeqCst);
    wf.run(&event(), now()).await.unwrap();
    let runs: Vec<usize> = steps.iter().map(|s| s.runs.load(Ordering::SeqCst)).collect();
    assert_eq!(runs, [1, 1, 3, 1, 1], "steps before the failure ran once");
    for s in ["a", "b", "c", "d", "e"] {
        assert_eq!(store.counter("COUNT", s, "n"), 1, "effect of {s} exactly once");
    }
    // A duplicate of a finished run does nothing.
    wf.run(&event(), now()).await.unwrap();
    assert_eq!(steps.iter().map(|s| s.runs.load(Ordering::SeqCst)).sum::<usize>(), 7);
}

#[tokio::test]
async fn a_lost_race_continues_from_the_winner_without_doubling_effects() {
    let store = Arc::new(MemStore::default());
    let steps: Vec<_> = ["a", "b", "c"].map(|n| Arc::new(Counting::new(n))).into();
    let wf = flow(&store, &steps);
    store.race_next_commit.store(true, Ordering::SeqCst);
    wf.run(&event(), now()).await.unwrap();
    for s in ["a", "b", "c"] {
        assert_eq!(store.counter("COUNT", s, "n"), 1, "{s}");
    }
    assert_eq!(store.runs.lock().unwrap().values().next().unwrap().next_step, 3);
}

#[tokio::test]
async fn too_many_effects_are_refused() {
    struct Greedy;
    impl Step for Greedy {
        fn name(&self) -> &str {
            "greedy"
        }
        fn run<'a>(&'a self, _cx: &'a StepContext<'a>) -> BoxFuture<'a, Result<StepResult, HandlerError>> {
            Box::pin(async {
                Ok(StepResult {
                    output: Map::new(),
                    effects: (0..100)
                        .map(|i| Effect::Put {
                            record: RecordRef::new("X", i.to_string()),
                            fields: Map::new(),
                        })
                        .collect(),
                })
            })
        }
    }
    let store = Arc::new(MemStore::default());
    let wf = Workflow::new("g", store.clone(), Duration::from_secs(60)).step(Greedy);
    let err = wf.run(&event(), now()).await.unwrap_err();
    assert!(!err.retryable);
    assert!(store.records.lock().unwrap().is_empty());
}
