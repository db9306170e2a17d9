//! Which producer of the SQS ingest queue may send events for which tenant.
//!
//! The queue's policy decides who may send at all (listed IAM roles). A
//! message names its tenant in an attribute, so without more any listed
//! producer could send for any tenant. The producer bindings tie each
//! producer, by the principal id SQS records as the message's `SenderId`,
//! to the tenants it may send for.
//!
//! # The configuration
//!
//! A JSON object from principal id to the tenants bound to it; `"*"` binds
//! every tenant:
//!
//! ```json
//! {"AROAEXAMPLEBILLING01": ["acme", "globex"], "AROAEXAMPLEPLATFORM1": ["*"]}
//! ```
//!
//! For a role the principal id is the role's unique id (`AROA…`), which SQS
//! records as `AROA…:<session name>`; only the part before `:` is matched,
//! so every session of the role is the same producer. Find it with
//! `aws iam get-role --role-name <name> --query Role.RoleId`. For an IAM
//! user it is the user's id (`AIDA…`, `aws iam get-user`).
//!
//! An empty object (or none) binds nothing and checks nothing: every
//! producer the queue's policy lets send is trusted for every tenant.
//!
//! # The replay sender
//!
//! AWS service events replayed from the AWS events DLQ are sent by the
//! function that administers the DLQs. Their tenant comes from the tenant
//! rules, not from an attribute, so the replay sender is accepted for them
//! whatever the bindings say, and bound to nothing else (a message it
//! re-sends with a `tenant_id` attribute needs a binding like any other).

use crate::ids::TenantId;
use std::collections::{BTreeMap, BTreeSet};

/// The value that binds a producer to every tenant.
pub const EVERY_TENANT: &str = "*";

/// The tenants one producer may send for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Every tenant (`*`).
    Every,
    /// Only these tenants.
    Only(BTreeSet<TenantId>),
}

/// How a message gives its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantFrom {
    /// The producer names it (the `tenant_id` attribute).
    Attribute,
    /// An AWS service event replayed from its DLQ: the tenant rules give it.
    TenantRules,
}

/// The producer bindings of the SQS door (see the module's documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerBindings {
    bindings: BTreeMap<String, Bound>,
    replay_sender: Option<String>,
}

/// Why the bindings configuration was refused (at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerBindingsError {
    /// The configuration is not JSON of the expected shape; the text says where.
    #[error("the producer bindings are not a JSON object of principal id -> [tenant id or \"*\"]: {0}")]
    Malformed(String),
    /// A key is not a principal id.
    #[error("principal id {0:?} is not one: letters and digits only, as `aws iam get-role` shows RoleId")]
    PrincipalId(String),
    /// The principal is bound to an empty list.
    #[error("principal {0} is bound to no tenant; leave it out instead")]
    Empty(String),
    /// A tenant the principal is bound to is not a valid tenant id.
    #[error("principal {principal}: {reason}")]
    Tenant {
        /// The principal id.
        principal: String,
        /// Why the tenant id is refused.
        reason: String,
    },
}

/// Why a message was not accepted from its sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotBound {
    /// The message carries no `SenderId`.
    #[error("the message has no SenderId, so its producer cannot be bound to tenant {tenant}")]
    NoSender {
        /// The tenant the message names.
        tenant: TenantId,
    },
    /// The sender may not send for the tenant the message names.
    #[error("producer {sender} is not bound to tenant {tenant}")]
    Tenant {
        /// The message's `SenderId`.
        sender: String,
        /// The tenant the message names.
        tenant: TenantId,
    },
}

fn valid_principal(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl ProducerBindings {
    /// Parses the bindings (`None` or blank: none).
    pub fn parse(json: Option<&str>) -> Result<Self, ProducerBindingsError> {
        let raw: BTreeMap<String, Vec<String>> = match json.map(str::trim).filter(|j| !j.is_empty()) {
            None => BTreeMap::new(),
            Some(j) => serde_json::from_str(j).map_err(|e| ProducerBindingsError::Malformed(e.to_string()))?,
        };
        let mut bindings = BTreeMap::new();
        for (principal, tenants) in raw {
            if !valid_principal(&principal) {
                return Err(ProducerBindingsError::PrincipalId(principal));
            }
            if tenants.is_empty() {
                return Err(ProducerBindingsError::Empty(principal));
            }
            let bound = if tenants.iter().any(|t| t == EVERY_TENANT) {
                if tenants.len() > 1 {
                    return Err(ProducerBindingsError::Tenant {
                        principal,
                        reason: format!("\"{EVERY_TENANT}\" binds every tenant and stands alone"),
                    });
                }
                Bound::Every
            } else {
                let mut set = BTreeSet::new();
                for t in &tenants {
                    let id = TenantId::parse(t).map_err(|e| ProducerBindingsError::Tenant {
                        principal: principal.clone(),
                        reason: e.to_string(),
                    })?;
                    set.insert(id);
                }
                Bound::Only(set)
            };
            bindings.insert(principal, bound);
        }
        Ok(Self {
            bindings,
            replay_sender: None,
        })
    }

    /// Names the principal id of the function that replays AWS service
    /// events into the queue (`None` or blank: no replay sender).
    pub fn with_replay_sender(mut self, principal: Option<&str>) -> Result<Self, ProducerBindingsError> {
        self.replay_sender = match principal.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) if valid_principal(p) => Some(p.to_string()),
            Some(p) => return Err(ProducerBindingsError::PrincipalId(p.to_string())),
        };
        Ok(self)
    }

    /// Whether nothing is bound: every producer is trusted for every tenant.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The tenants bound to `principal`, if it is bound.
    pub fn bound(&self, principal: &str) -> Option<&Bound> {
        self.bindings.get(principal)
    }

    /// Whether the message `sender_id` (SQS's `SenderId`, as received) sent
    /// for `tenant` is accepted.
    pub fn check(&self, sender_id: Option<&str>, tenant: &TenantId, from: TenantFrom) -> Result<(), NotBound> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(principal) = sender_id
            .map(|s| s.split(':').next().unwrap_or(s))
            .filter(|p| !p.is_empty())
        else {
            return Err(NotBound::NoSender { tenant: tenant.clone() });
        };
        if from == TenantFrom::TenantRules && self.replay_sender.as_deref() == Some(principal) {
            return Ok(());
        }
        match self.bindings.get(principal) {
            Some(Bound::Every) => Ok(()),
            Some(Bound::Only(tenants)) if tenants.contains(tenant) => Ok(()),
            _ => Err(NotBound::Tenant {
                sender: principal.to_string(),
                tenant: tenant.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn bindings() -> ProducerBindings {
        ProducerBindings::parse(Some(r#"{"AROABILLING": ["acme", "globex"], "AROAPLATFORM": ["*"]}"#))
            .unwrap()
            .with_replay_sender(Some("AROAADMIN"))
            .unwrap()
    }

    #[test]
    fn a_producer_sends_only_for_the_tenants_bound_to_it() {
        let b = bindings();
        let attr = TenantFrom::Attribute;
        // Every session of the role is the same producer.
        assert_eq!(b.check(Some("AROABILLING:lambda-1"), &t("acme"), attr), Ok(()));
        assert_eq!(b.check(Some("AROABILLING:other"), &t("globex"), attr), Ok(()));
        assert_eq!(
            b.check(Some("AROABILLING:lambda-1"), &t("initech"), attr),
            Err(NotBound::Tenant {
                sender: "AROABILLING".into(),
                tenant: t("initech")
            })
        );
        assert_eq!(b.check(Some("AROAPLATFORM:x"), &t("initech"), attr), Ok(()));
        // A principal nobody bound, or none at all, sends for no tenant.
        assert!(b.check(Some("AROASTRANGER:x"), &t("acme"), attr).is_err());
        assert!(b.check(Some("AIDAUSER"), &t("acme"), attr).is_err());
        assert_eq!(
            b.check(None, &t("acme"), attr),
            Err(NotBound::NoSender { tenant: t("acme") })
        );
        assert!(b.check(Some(""), &t("acme"), attr).is_err());
        assert!(b.check(Some(":session"), &t("acme"), attr).is_err());
        // A prefix of a bound id is another principal.
        assert!(b.check(Some("AROABILL:x"), &t("acme"), attr).is_err());
    }

    #[test]
    fn the_replay_sender_is_trusted_only_for_events_the_tenant_rules_place() {
        let b = bindings();
        assert_eq!(
            b.check(Some("AROAADMIN:s"), &t("initech"), TenantFrom::TenantRules),
            Ok(())
        );
        assert!(
            b.check(Some("AROAADMIN:s"), &t("initech"), TenantFrom::Attribute)
                .is_err()
        );
        // Another producer's replay-shaped message is checked as any other.
        assert!(
            b.check(Some("AROABILLING:s"), &t("initech"), TenantFrom::TenantRules)
                .is_err()
        );
        assert_eq!(
            b.check(Some("AROABILLING:s"), &t("acme"), TenantFrom::TenantRules),
            Ok(())
        );
    }

    #[test]
    fn no_bindings_trust_every_producer_for_every_tenant() {
        for b in [
            ProducerBindings::parse(None).unwrap(),
            ProducerBindings::parse(Some("  ")).unwrap(),
            ProducerBindings::parse(Some("{}"))
                .unwrap()
                .with_replay_sender(Some("AROAADMIN"))
                .unwrap(),
        ] {
            assert!(b.is_empty());
            assert_eq!(b.check(None, &t("acme"), TenantFrom::Attribute), Ok(()));
            assert_eq!(b.check(Some("AROAANY:x"), &t("globex"), TenantFrom::Attribute), Ok(()));
        }
    }

    #[test]
    fn bad_bindings_are_refused_at_start_up() {
        for (json, what) in [
            ("[]", "not an object"),
            (r#"{"AROA": "acme"}"#, "not a list"),
            (r#"{"AROA:session": ["acme"]}"#, "a session in the key"),
            (r#"{"": ["acme"]}"#, "an empty key"),
            (r#"{"AROA": []}"#, "bound to nothing"),
            (r#"{"AROA": ["*", "acme"]}"#, "* with others"),
            (r#"{"AROA": ["not a tenant!"]}"#, "an invalid tenant"),
        ] {
            assert!(ProducerBindings::parse(Some(json)).is_err(), "{what}: {json}");
        }
        assert!(ProducerBindings::default().with_replay_sender(Some("AROA:x")).is_err());
        assert_eq!(
            ProducerBindings::parse(Some(r#"{"AROA1": ["acme"]}"#))
                .unwrap()
                .bound("AROA1"),
            Some(&Bound::Only(BTreeSet::from([t("acme")])))
        );
    }
}
