//! Operator commands on accounts (`refract admin …`), run against the document store the
//! configuration names (the same settings as the gateway's): making an account a platform
//! superadmin or not, and deactivating or reactivating it. Each takes effect on the account's
//! next request: the gateway reads the account on every request.
//!
//! A platform superadmin is an account granted here, or one whose email an identity provider
//! verified and `super_admin_emails` lists; signing up with a listed address never is.

use anyhow::{Context, bail};
use refract_gateway::users::{self, PlatformRole, StoredUser, UserStatus};

use crate::Config;

/// What to do to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCommand {
    /// Make it a platform superadmin.
    Grant,
    /// Take back a grant.
    Revoke,
    /// Refuse every session and token of it, and every new login.
    Deactivate,
    /// Undo a deactivation.
    Activate,
}

/// Runs `command` on the account with `email`; returns what happened, for a person.
pub async fn run(config: &Config, command: AdminCommand, email: &str) -> anyhow::Result<String> {
    if config.database_url.is_none() && !config.data_dir.is_dir() {
        bail!(
            "no data folder at {} (setting `data_dir`): run this where `refract serve` keeps its data, or set \
             `database_url`",
            config.data_dir.display()
        );
    }
    let store = refract_storage::open_document_store(&config.database())
        .await
        .context("database_url")?;
    let change = move |account: &mut StoredUser| match command {
        AdminCommand::Grant => account.platform_role = Some(PlatformRole::Superadmin),
        AdminCommand::Revoke => account.platform_role = None,
        AdminCommand::Deactivate => account.user.status = UserStatus::Deactivated,
        AdminCommand::Activate if account.user.status == UserStatus::Deactivated => {
            account.user.status = UserStatus::Validated;
        }
        AdminCommand::Activate => {}
    };
    let Some(account) = users::update_by_email(store.as_ref(), email, change)
        .await
        .context("updating the account")?
    else {
        bail!("no account with the email {email}");
    };
    let id = &account.user.id;
    let superadmin = account.is_superadmin(&config.super_admin_emails);
    Ok(match command {
        AdminCommand::Grant if account.user.status == UserStatus::Deactivated => {
            format!("{email} (account {id}) is granted superadmin, but the account is deactivated")
        }
        AdminCommand::Grant => format!("{email} (account {id}) is a platform superadmin"),
        AdminCommand::Revoke if superadmin => format!(
            "{email} (account {id}) has no grant, but is still a superadmin: its email is in super_admin_emails and \
             verified by an identity provider"
        ),
        AdminCommand::Revoke => format!("{email} (account {id}) is not a platform superadmin"),
        AdminCommand::Deactivate => format!("{email} (account {id}) is deactivated"),
        AdminCommand::Activate => format!("{email} (account {id}) is active"),
    })
}
