use super::*;
use switchyard_core::model::DeliveryState;

#[test]
fn cpu_time_counts_work() {
    // Spin until the process has used 150 ms of CPU: if cpu_time() did
    // not count it, the deadline would pass first. (Not a wall-clock
    // share: the machine may be busy with other work.)
    let before = cpu_time();
    let t = Instant::now();
    let mut x = 0u64;
    while cpu_time() < before + Duration::from_millis(150) {
        for _ in 0..100_000 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{before:?} -> {:?}", cpu_time());
    }
    assert!(x > 0);
}

#[test]
fn tasks_become_lambda_batches_of_ten_with_1_kb_bodies() {
    let mem: Memory = Arc::new(MemoryStore::default());
    let eps = endpoints(&mem, &["http://127.0.0.1:1/a".into(), "http://127.0.0.1:1/b".into()]).unwrap();
    let ts = tasks(25, &eps).unwrap();
    assert!((1000..1100).contains(&ts[0].payload.len()), "{}", ts[0].payload.len());
    assert_eq!(ts[1].endpoint_id, eps[1].id);
    let b = batches(&ts);
    assert_eq!(b.iter().map(|e| e.records.len()).collect::<Vec<_>>(), [10, 10, 5]);
    let r = &b[2].records[4];
    assert_eq!(r.attributes["ApproximateReceiveCount"], "1");
    let back: DeliveryTask = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(back.delivery_id, ts[24].delivery_id);
}

#[tokio::test(flavor = "current_thread")]
async fn the_engine_delivers_every_task_without_the_network() {
    let mem: Memory = Arc::new(MemoryStore::default());
    let eps = endpoints(&mem, &["http://127.0.0.1:1/a".into()]).unwrap();
    let e = Arc::new(engine(&mem, Instant200, mem.clone(), Duration::from_secs(15)));
    drive(e, batches(&tasks(30, &eps).unwrap()), 2).await;
    let records = mem.records.lock().unwrap();
    assert_eq!(records.len(), 30);
    assert!(records.values().all(|d| d.state == DeliveryState::Succeeded));
}
