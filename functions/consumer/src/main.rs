//! The consumer Lambda: wiring only. See `lib.rs` for the handler and
//! `examples.rs` for the handlers and workflows it runs.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    switchyard_aws::logging::init();
    let sdk = switchyard_aws::load().await;
    let settings = switchyard_consumer::Settings::from_env()?;
    let app = switchyard_consumer::AwsConsumer::new(&sdk, &settings)?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(app.handle(event.payload).await)
    }))
    .instrument(tracing::info_span!("switchyard", function = "consumer"))
    .await
}
