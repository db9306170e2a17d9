//! Changing an endpoint without undoing another write: read, change the
//! copy, write only what changed, on condition that nothing else changed it
//! since the read; again from a fresh read if something did.

use crate::endpoint::{Endpoint, Written};
use crate::error::PortError;
use crate::ids::{EndpointId, TenantId};
use crate::ports::EndpointEdits;
use std::future::Future;

/// How many times [`edit_endpoint`] reads and writes again when the endpoint
/// changes under it.
pub const EDIT_ATTEMPTS: usize = 5;

/// Why [`edit_endpoint`] changed nothing.
#[derive(Debug)]
pub enum EditError<E> {
    /// No such endpoint.
    Missing,
    /// The endpoint changed under every one of [`EDIT_ATTEMPTS`] tries.
    Conflict,
    /// The change refused the endpoint.
    Rejected(E),
    /// The store failed.
    Store(PortError),
}

impl<E> From<PortError> for EditError<E> {
    fn from(e: PortError) -> Self {
        Self::Store(e)
    }
}

/// Changes an endpoint without undoing any other write: reads it, applies
/// `change` to the copy read, and writes only what `change` changed, on
/// condition that no other change was made since the read (circuit updates
/// are not changes in this sense: they touch other attributes and survive).
/// A stale write is made again from a fresh read, up to [`EDIT_ATTEMPTS`]
/// times. Returns the endpoint as stored.
pub async fn edit_endpoint<S, F, Fut, E>(
    store: &S,
    tenant: &TenantId,
    id: &EndpointId,
    mut change: F,
) -> Result<Endpoint, EditError<E>>
where
    S: EndpointEdits,
    F: FnMut(Endpoint) -> Fut,
    Fut: Future<Output = Result<Endpoint, E>>,
{
    for _ in 0..EDIT_ATTEMPTS {
        let Some(before) = store.current(tenant, id).await? else {
            return Err(EditError::Missing);
        };
        let after = change(before.clone()).await.map_err(EditError::Rejected)?;
        match store.write_changes(&before, &after).await? {
            Written::Done(stored) => return Ok(*stored),
            Written::Missing => return Err(EditError::Missing),
            Written::Stale => continue,
        }
    }
    Err(EditError::Conflict)
}
