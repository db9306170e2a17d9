//! The functions' processes under the runner: an invocation past its
//! timeout, a process killed mid-batch, Ctrl-C leaving nothing behind, and
//! one invocation from an events file.

use super::*;

/// The process ids of `pid`'s descendants, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            parent.insert(p, ppid);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .map(|x| x.1.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[test]
fn ctrl_c_stops_the_whole_stack_and_leaves_no_process_behind() {
    use std::io::{BufRead, BufReader};
    let _ = venv();
    let xtask = target_dir().join("debug").join("xtask");
    assert!(
        xtask.is_file(),
        "{} is not built: run the tests with `cargo xtask test`",
        xtask.display()
    );
    let _ = template(); // the function binaries are there
    let mut child = std::process::Command::new(&xtask)
        .args(["up", "--no-build", "--port", "0"])
        .env_remove(switchyard_local::moto::ENDPOINT_ENV) // its own moto, to see it stop too
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let ready = line.starts_with("==> ready");
                seen.push(line);
                if ready {
                    break;
                }
            }
            _ => {
                let _ = child.kill();
                panic!("`xtask up` ended before it was ready:\n{}", seen.join("\n"));
            }
        }
    }
    let out = seen.join("\n");
    assert!(
        out.contains("AWS::SQS::Queue") && out.contains("DeliveryFunction"),
        "{out}"
    );
    // moto (python) and one warm instance of each of the five functions.
    let procs = descendants(pid);
    assert!(
        procs.len() >= 6,
        "expected moto and 5 function processes under xtask, found {procs:?}"
    );

    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let until = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "`xtask up` did not stop within 30 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "xtask up exited with {exit}");
    let until = Instant::now() + Duration::from_secs(5);
    while procs.iter().any(|p| alive(*p)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<u32> = procs.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

/// `template.yaml` with some of a resource's properties replaced.
fn template_patched(patches: &[(&str, &str, Value)]) -> Value {
    let mut t = template().clone();
    for (id, prop, v) in patches {
        t["Resources"][*id]["Properties"][*prop] = v.clone();
    }
    t
}

/// A receiver whose first `slow` requests take `delay` to answer.
async fn slow_then_ok(slow: usize, delay: Duration) -> Receiver {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Receiver::start(move |_| {
        if n.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < slow {
            switchyard_tests::Reply::status(200).after(delay)
        } else {
            switchyard_tests::Reply::status(200)
        }
    })
    .await
    .unwrap()
}

/// Starts a runner on `t`, registers an endpoint on `rx` and POSTs one
/// event; returns the runner and the event id.
async fn one_event(t: &Value, label: &str, rx: &Receiver) -> Runner {
    let mut opts = options(label, &[("RequestTimeoutMs", "10000")]);
    opts.max_instances = 1;
    let runner = Runner::start(&sdk().await, t, opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    let key = api.tenant("acme").await;
    api.endpoint(&key, &rx.url("/slow"), &[]).await;
    let (s, b) = api
        .call(
            "POST",
            "/v1/events",
            &key,
            Some(json!({"id": "evt_slow", "type": "a.b", "data": {}})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    runner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_past_its_timeout_is_killed_and_its_batch_comes_back() {
    // DeliveryFunction may run 2 s; the receiver's first answer takes 8.
    let t = template_patched(&[
        ("DeliveryFunction", "Timeout", json!(2)),
        ("DeliveriesQueue", "VisibilityTimeout", json!(3)),
    ]);
    let rx = slow_then_ok(1, Duration::from_secs(8)).await;
    let runner = one_event(&t, "timeout", &rx).await;
    wait_invocations(&runner, "a delivery that timed out, then one that succeeded", |inv| {
        let d: Vec<_> = inv.iter().filter(|i| i.function == "DeliveryFunction").collect();
        d.first().is_some_and(|i| i.outcome.starts_with("timed out")) && d.iter().skip(1).any(|i| i.ok)
    })
    .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "the cut-off attempt and the redelivery");
    let slow = switchyard_tests::webhook_id("acme", "evt_slow");
    assert!(got.iter().all(|r| r.header("webhook-id") == Some(slow.as_str())));
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_process_killed_mid_batch_fails_the_invocation_and_nothing_is_lost() {
    let t = template_patched(&[("DeliveriesQueue", "VisibilityTimeout", json!(3))]);
    let rx = slow_then_ok(1, Duration::from_secs(30)).await;
    let runner = one_event(&t, "crash", &rx).await;
    // The first attempt is in flight (the receiver holds it): kill the
    // delivery process under it.
    let first = rx.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(first.len(), 1);
    let pids = runner.pids_of("DeliveryFunction");
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_invocations(&runner, "a crashed delivery, then one that succeeded", |inv| {
        let d: Vec<_> = inv.iter().filter(|i| i.function == "DeliveryFunction").collect();
        d.first().is_some_and(|i| i.outcome.contains("Runtime.ExitError")) && d.iter().skip(1).any(|i| i.ok)
    })
    .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    let slow = switchyard_tests::webhook_id("acme", "evt_slow");
    assert!(got.iter().all(|r| r.header("webhook-id") == Some(slow.as_str())));
    assert!(
        !runner.pids_of("DeliveryFunction").contains(&pids[0]),
        "a new instance took over"
    );
    runner.shutdown().await;
}

#[test]
fn invoke_runs_one_function_once_with_an_events_file() {
    let _ = template();
    let xtask = target_dir().join("debug").join("xtask");
    assert!(
        xtask.is_file(),
        "{} is not built: run the tests with `cargo xtask test`",
        xtask.display()
    );
    let invoke = |function: &str, file: &str| {
        let out = std::process::Command::new(&xtask)
            .args(["invoke", function, "-e", &format!("events/{file}"), "--no-build"])
            .env_remove(switchyard_local::moto::ENDPOINT_ENV)
            .current_dir(root())
            .output()
            .unwrap();
        let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{function} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.success(), stdout)
    };
    // An HTTP API event: the API function's payload-2.0 answer (the
    // sample's key does not exist in the fresh stack).
    let (ok, out) = invoke("ApiFunction", "api-endpoints.json");
    assert!(ok);
    assert_eq!(out["statusCode"], 401, "{out}");
    // An SQS batch: the partial batch response.
    let (ok, out) = invoke("FanoutFunction", "fanout-fanout-tasks.json");
    assert!(ok);
    assert_eq!(out, json!({"batchItemFailures": []}));
    // A function error is printed as Lambda reports it, and fails the command.
    let (ok, out) = invoke("IngestFunction", "ingest-aws-service-events.json");
    assert!(!ok);
    assert_eq!(out["errorType"], "NoTenantForEvent", "{out}");
}
