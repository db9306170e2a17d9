//! The management API Lambda: wiring only. See `lib.rs` for the router.

use std::sync::Arc;

use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    switchyard_aws::logging::init();
    let sdk = switchyard_aws::load().await;
    let settings = switchyard_api::Settings::from_env()?;
    let app = switchyard_api::router(Arc::new(switchyard_api::AppState::new(&sdk, &settings)));
    lambda_http::run(app)
        .instrument(tracing::info_span!("switchyard", function = "api"))
        .await
}
