//! The monitor Lambda: wiring only. See `lib.rs` for the handler.

use lambda_runtime::{Error, LambdaEvent, service_fn};

use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchyard_aws::logging::init();
    let sdk = switchyard_aws::load().await;
    let settings = switchyard_monitor::Settings::from_env()?;
    let app = switchyard_monitor::AwsMonitor::new(&sdk, &settings);
    let app = &app;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        app.handle().await.map_err(|e| lambda_runtime::Diagnostic {
            error_type: "MonitorFailed".into(),
            error_message: e.to_string(),
        })
    }))
    .instrument(tracing::info_span!("switchyard", function = "monitor"))
    .await
}
