//! The ingest Lambda: wiring only. See `lib.rs` for the handler, which
//! recognises the door (HTTP API, SQS ingest queue, EventBridge) by the
//! event's shape.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};

use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchyard_aws::logging::init();
    let sdk = switchyard_aws::load().await;
    let settings = switchyard_ingest::Settings::from_env()?;
    let app = switchyard_ingest::AwsIngest::new(&sdk, &settings);
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        app.dispatch(event.payload).await.map_err(|e| Diagnostic {
            error_type: e.kind().to_string(),
            error_message: e.to_string(),
        })
    }))
    .instrument(tracing::info_span!("switchyard", function = "ingest"))
    .await
}
