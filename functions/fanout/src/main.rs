//! The fan-out Lambda: wiring only. See `lib.rs` for the handler.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchyard_aws::logging::init();
    let sdk = switchyard_aws::load().await;
    let settings = switchyard_fanout::Settings::from_env()?;
    let app = switchyard_fanout::AwsFanout::new(&sdk, &settings);
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(app.handle(event.payload).await)
    }))
    .instrument(tracing::info_span!("switchyard", function = "fanout"))
    .await
}
