//! `refract login` and `refract logout`. A login signs in with the account's password
//! (`POST /v2/login`), creates a personal access token named for the CLI
//! (`POST /v2/user/accessTokens`), ends the login session and stores the platform's URL and
//! that token in the profile; the password and the session are never stored. A logout removes
//! the profile, and with `--revoke` first revokes its token, which takes a password login
//! again: a personal access token may not revoke itself.

use std::io::Write;

use anyhow::{Context, bail};
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Console, LoginArgs, LogoutArgs, read_secret_line, segment};
use crate::api::Api;
use crate::output;
use crate::profile::{self, Given, Profile};

/// The part of `POST /v2/login`'s answer the CLI reads.
#[derive(Deserialize)]
struct Session {
    token: String,
    #[serde(default)]
    email: Option<String>,
}

/// A personal access token as the API describes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessToken {
    id: String,
    name: String,
    /// The value, only in the creation's answer; never printed.
    #[serde(default, skip_serializing)]
    token: Option<String>,
    token_hint: String,
    expires_at: String,
}

/// `refract login`.
pub(super) async fn login(args: LoginArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let path = profile::path(&console.env)?;
    let previous = Profile::load(&path)?;
    let given = Given {
        url: args.url.clone(),
        ..Given::default()
    };
    let url = profile::resolve(&given, &console.env, previous.as_ref()).url;
    let api = Api::new(&url, None)?;
    let email = match &args.email {
        Some(email) => email.trim().to_owned(),
        None => ask_email(console, args.password_stdin)?,
    };
    let password = read_password(console, args.password_stdin)?;

    let session = open_session(&api, &email, &password).await?;
    let as_user = api.with_token(Some(session.token.clone()));
    let now = Utc::now();
    let name = args
        .token_name
        .clone()
        .unwrap_or_else(|| format!("refract CLI {}", now.format("%Y-%m-%d %H:%M")));
    let expires = now + Duration::days(i64::from(args.days));
    let body = json!({
        "name": name,
        "expiresAt": expires.to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    let created: anyhow::Result<AccessToken> = as_user
        .call(Method::POST, "/v2/user/accessTokens", Some(&body))
        .await;
    // The previous login's token is replaced: revoke it while a session is open.
    let same_platform = previous.as_ref().filter(|p| p.url == api.base());
    if created.is_ok()
        && let Some(old) = same_platform.and_then(|p| p.token_id.as_deref())
    {
        let _ = as_user
            .call::<Value>(
                Method::DELETE,
                &format!("/v2/user/accessTokens/{}", segment(old)),
                None,
            )
            .await;
    }
    close_session(&as_user).await;
    let token = created?;
    let value = token
        .token
        .clone()
        .context("the platform created the access token but did not answer its value")?;
    let email = session.email.unwrap_or(email);
    let stored = Profile {
        url: api.base().to_owned(),
        token: value,
        token_id: Some(token.id.clone()),
        expires_at: Some(token.expires_at.clone()),
        email: Some(email.clone()),
        workspace: same_platform.and_then(|p| p.workspace.clone()),
    };
    stored.save(&path)?;

    let out = &mut *console.stdout;
    if args.json {
        let report = json!({
            "url": stored.url,
            "email": email,
            "profile": path,
            "accessToken": token,
        });
        return output::json(out, &report);
    }
    writeln!(out, "Logged in to {} as {email}.", stored.url)?;
    writeln!(
        out,
        "Access token \"{}\" (…{}) saved to {}; it expires at {}.",
        token.name,
        token.token_hint,
        path.display(),
        token.expires_at
    )?;
    Ok(())
}

/// `refract logout`.
pub(super) async fn logout(args: LogoutArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let path = profile::path(&console.env)?;
    let Some(stored) = Profile::load(&path)? else {
        if args.json {
            return output::json(
                console.stdout,
                &json!({"removed": false, "revoked": false, "profile": path}),
            );
        }
        writeln!(
            console.stdout,
            "Not logged in: there is no profile at {}.",
            path.display()
        )?;
        return Ok(());
    };
    if args.revoke {
        let email = stored
            .email
            .clone()
            .context("the profile names no account to log in with: remove it by hand")?;
        let password = read_password(console, args.password_stdin)?;
        let api = Api::new(&stored.url, None)?;
        let session = open_session(&api, &email, &password).await?;
        let as_user = api.with_token(Some(session.token));
        let which = stored.token_id.as_deref().unwrap_or(&stored.token);
        let revoked = as_user
            .call::<Value>(
                Method::DELETE,
                &format!("/v2/user/accessTokens/{}", segment(which)),
                None,
            )
            .await;
        close_session(&as_user).await;
        match revoked {
            Ok(_) => {}
            Err(e) if crate::api::ApiError::has_status(&e, reqwest::StatusCode::NOT_FOUND) => {}
            Err(e) => return Err(e),
        }
    }
    Profile::remove(&path)?;

    let out = &mut *console.stdout;
    if args.json {
        return output::json(
            out,
            &json!({"removed": true, "revoked": args.revoke, "profile": path, "url": stored.url}),
        );
    }
    writeln!(
        out,
        "Logged out of {}: removed {}.",
        stored.url,
        path.display()
    )?;
    if args.revoke {
        writeln!(out, "The access token is revoked.")?;
    } else {
        writeln!(
            out,
            "The access token stays valid until {}: revoke it in the console, or log out with \
             `refract logout --revoke` next time.",
            stored.expires_at.as_deref().unwrap_or("it expires")
        )?;
    }
    Ok(())
}

/// Signs in with a password; the session's token.
async fn open_session(api: &Api, email: &str, password: &str) -> anyhow::Result<Session> {
    api.call(
        Method::POST,
        "/v2/login",
        Some(&json!({"email": email, "password": password})),
    )
    .await
}

/// Ends the session `api` calls with; a failure only leaves it to expire.
async fn close_session(api: &Api) {
    let _ = api.call::<Value>(Method::POST, "/v2/logout", None).await;
}

/// Asks for the email on a terminal.
fn ask_email(console: &mut Console<'_>, password_stdin: bool) -> anyhow::Result<String> {
    if password_stdin || !console.stdin_is_terminal {
        bail!("--email is required when the password comes from stdin or stdin is no terminal");
    }
    eprint!("Email: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    console
        .stdin
        .read_line(&mut line)
        .context("reading the email")?;
    let email = line.trim().to_owned();
    anyhow::ensure!(!email.is_empty(), "no email given");
    Ok(email)
}

/// The password: stdin's first line with `--password-stdin` (read without echo when stdin is
/// a terminal), else asked for on the terminal; never from the command line.
fn read_password(console: &mut Console<'_>, from_stdin: bool) -> anyhow::Result<String> {
    match (from_stdin, console.stdin_is_terminal) {
        (true, false) => read_secret_line(console.stdin),
        (true, true) => rpassword::read_password().context("reading the password"),
        (false, true) => rpassword::prompt_password("Password: ").context("reading the password"),
        (false, false) => {
            bail!("no terminal to ask the password on: pipe it in with --password-stdin")
        }
    }
}
