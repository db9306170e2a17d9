//! The queue administration Lambda: wiring only. See `lib.rs` for the router.

use std::sync::Arc;

use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    switchyard_aws::logging::init();
    let sdk = switchyard_aws::load().await;
    let settings = switchyard_admin::Settings::from_env()?;
    let app = switchyard_admin::router(Arc::new(switchyard_admin::AdminState::new(&sdk, &settings)));
    lambda_http::run(app)
        .instrument(tracing::info_span!("switchyard", function = "admin"))
        .await
}
