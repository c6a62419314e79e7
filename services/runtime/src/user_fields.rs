//! The computed fields of the `user` scope beyond `id` (`automation-dsl.md` §5.2): `email` and
//! `authData` from the user's account, `role` in the run's workspace. Read only when a run
//! asks for one, so runs that never do cost nothing; they win over stored values of the same
//! name.

use refract_core::UserId;
use refract_host::RunContext;
use refract_storage::{DocumentStore, Principal, StorageError, access_of, collections};
use serde_json::{Value, json};

/// The names computed here.
pub(crate) const COMPUTED: &[&str] = &["email", "authData", "role"];

/// The computed field `name` of `user` in `run`'s workspace (`None`: not set for that user).
pub(crate) async fn computed(
    store: &dyn DocumentStore,
    run: &RunContext,
    user: &UserId,
    name: &str,
) -> Result<Option<Value>, StorageError> {
    match name {
        "email" | "authData" => {
            let account = store.get(&collections::USERS, user.as_str()).await?;
            Ok(account
                .and_then(|a| a.body.get(name).cloned())
                .filter(|v| !v.is_null()))
        }
        "role" => {
            let who = Principal {
                user_id: Some(user.as_str()),
                ..Principal::default()
            };
            let grant = access_of(store, run.workspace_id.as_str(), &who)
                .await?
                .grant;
            Ok(grant
                .role
                .map(|r| r.name().to_owned())
                .or_else(|| grant.custom_roles.first().cloned())
                .map(|r| json!(r)))
        }
        _ => Ok(None),
    }
}
