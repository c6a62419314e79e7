//! The `refract` CLI against the in-process platform, run in process as the binary runs it
//! (`refract::run_api_command` with an environment, stdin and stdout of the test's own): login
//! stores a private token that the other commands use, workspaces, automations applied from
//! YAML files with their versions and rollback reaching the webhook, export and import, deploy,
//! and the errors a script sees.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use refract::api::ApiError;
use refract::profile::Profile;
use refract_tests::platform::{Client, Platform, example};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

/// One user's shell: the environment the CLI sees and a folder for its profile and files.
struct Shell {
    env: HashMap<String, String>,
    dir: PathBuf,
}

impl Shell {
    /// A shell whose profile lives in `dir` (no token, no URL, no workspace set).
    fn new(dir: &Path) -> Self {
        let env = HashMap::from([(
            "REFRACT_CLI_CONFIG".to_owned(),
            dir.join("profile/cli.toml").display().to_string(),
        )]);
        Self {
            env,
            dir: dir.to_path_buf(),
        }
    }

    fn profile_path(&self) -> PathBuf {
        self.dir.join("profile/cli.toml")
    }

    /// Runs `refract <args>` with `stdin`; the result and what it printed on stdout.
    async fn run(&self, args: &[&str], stdin: &str) -> (anyhow::Result<()>, String) {
        let mut input = std::io::Cursor::new(stdin.as_bytes().to_vec());
        let mut output = Vec::new();
        let mut console = refract::Console {
            env: self.env.clone(),
            stdin: &mut input,
            stdout: &mut output,
            stdin_is_terminal: false,
            progress: false,
        };
        let result =
            refract::run_api_command(args.iter().map(|a| (*a).to_owned()), &mut console).await;
        (result, String::from_utf8_lossy(&output).into_owned())
    }

    /// Runs `refract <args>`, which must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let (result, out) = self.run(args, "").await;
        result.with_context(|| format!("refract {} (printed {out:?})", args.join(" ")))?;
        Ok(out)
    }

    /// Runs `refract <args> --json`, which must succeed and print one JSON document.
    async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args).await?;
        serde_json::from_str(&out).with_context(|| format!("refract {args:?} printed {out:?}"))
    }

    /// Runs `refract <args>`, which must fail; the error.
    async fn fails(&self, args: &[&str]) -> anyhow::Result<anyhow::Error> {
        match self.run(args, "").await {
            (Err(e), _) => Ok(e),
            (Ok(()), out) => bail!("refract {} succeeded: {out}", args.join(" ")),
        }
    }

    /// Logs `email` in to `url` with the password on stdin.
    async fn login(&self, url: &str, email: &str) -> anyhow::Result<String> {
        let args = ["login", "--url", url, "--email", email, "--password-stdin"];
        let (result, out) = self.run(&args, &format!("{PASSWORD}\n")).await;
        result.with_context(|| format!("refract login (printed {out:?})"))?;
        Ok(out)
    }

    /// The token stored in the profile.
    fn stored_token(&self) -> anyhow::Result<String> {
        let profile = Profile::load(&self.profile_path())?.context("no profile")?;
        Ok(profile.token)
    }

    fn write(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

/// The status of `GET /v2/me` with `token`.
async fn me(platform: &Platform, token: &str) -> anyhow::Result<StatusCode> {
    let client = Client {
        token: Some(token.to_owned()),
        ..platform.client()
    };
    Ok(client.json(Method::GET, "/v2/me", None).await?.0)
}

/// Calls the webhook `endpoint` of `ws` until it answers `want` (a save reaches the runtime
/// through its fan-out), 10 s at most.
async fn answers(platform: &Platform, ws: &str, endpoint: &str, want: Value) -> anyhow::Result<()> {
    let client = platform.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = client
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/{endpoint}"),
                Some(json!({"name": "Ada"})),
            )
            .await?;
        if status == StatusCode::OK && body == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{endpoint} answers {status} {body}, not {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API error `error` carries (its code), else a failure naming the error.
fn api_code(error: &anyhow::Error) -> anyhow::Result<String> {
    error
        .downcast_ref::<ApiError>()
        .map(|e| e.code.clone())
        .with_context(|| format!("not an API error: {error:#}"))
}

const HELLO_V1: &str = "\
name: Hello
description: first
when:
  endpoint: true
do:
  - set:
      name: greeting
      value: Hello {{body.name}}
output:
  message: '{{greeting}}'
  v: 1
";

const HELLO_V2: &str = "\
name: Hello
when:
  endpoint: true
do:
  - set:
      name: greeting
      value: Hi {{body.name}}
output:
  message: '{{greeting}}'
  v: 2
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_stores_a_private_token_that_the_commands_use_until_logout() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start(data.path()).await?;
    let ada = platform.client().signed_up("ada@example.com").await?;
    let home = tempfile::tempdir()?;
    let shell = Shell::new(home.path());

    // A wrong password stores nothing.
    let args = [
        "login",
        "--url",
        &platform.url,
        "--email",
        "ada@example.com",
        "--password-stdin",
    ];
    let (result, _) = shell.run(&args, "wrong password\n").await;
    let error = result.err().context("a wrong password logged in")?;
    ensure!(
        error
            .downcast_ref::<ApiError>()
            .is_some_and(|e| e.status == StatusCode::UNAUTHORIZED),
        "{error:#}"
    );
    ensure!(
        !shell.profile_path().exists(),
        "a failed login wrote a profile"
    );

    let printed = shell.login(&platform.url, "ada@example.com").await?;
    ensure!(
        printed.contains(&format!("Logged in to {} as ada@example.com", platform.url)),
        "{printed}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(shell.profile_path())?
            .permissions()
            .mode();
        ensure!(
            mode & 0o777 == 0o600,
            "the profile's mode is {:o}",
            mode & 0o777
        );
    }
    let token = shell.stored_token()?;
    ensure!(
        token.starts_with("at:"),
        "a personal access token is stored, not the session: {token}"
    );
    ensure!(!std::fs::read_to_string(shell.profile_path())?.contains(PASSWORD));
    ensure!(me(&platform, &token).await? == StatusCode::OK);
    let (status, tokens) = ada.json(Method::GET, "/v2/user/accessTokens", None).await?;
    ensure!(status == StatusCode::OK, "{status} {tokens}");
    ensure!(
        tokens.as_array().map(Vec::len) == Some(1)
            && tokens[0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("refract CLI")),
        "{tokens}"
    );

    // The stored token and URL serve the other commands: no flag, no variable.
    let created = shell
        .json(&["workspaces", "create", "Demo CLI", "--use"])
        .await?;
    let ws = created["id"].as_str().context("no id")?.to_owned();
    let listed = shell.json(&["workspaces", "list"]).await?;
    let ids: Vec<&str> = listed
        .as_array()
        .context("a listing is an array")?
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    ensure!(ids == [ws.as_str()], "{listed}");
    let table = shell.ok(&["workspaces", "list"]).await?;
    let row = table
        .lines()
        .find(|l| l.contains(&ws))
        .with_context(|| format!("no row for {ws}: {table}"))?;
    ensure!(
        row.contains("Demo CLI") && row.trim_end().ends_with('*'),
        "the new workspace is the default: {table}"
    );
    ensure!(table.starts_with("ID"), "{table}");
    // Another platform's URL gets no token from the profile.
    let elsewhere = shell
        .fails(&["workspaces", "list", "--url", "http://127.0.0.1:9"])
        .await?;
    ensure!(
        elsewhere.to_string()
            == "not logged in to http://127.0.0.1:9: run `refract login` or set REFRACT_TOKEN",
        "{elsewhere:#}"
    );

    // Logging in again replaces the token and revokes the one it replaces.
    shell.login(&platform.url, "ada@example.com").await?;
    let second = shell.stored_token()?;
    ensure!(second != token);
    ensure!(me(&platform, &token).await? == StatusCode::UNAUTHORIZED);
    let table = shell.ok(&["workspaces", "list"]).await?;
    ensure!(
        table
            .lines()
            .any(|l| l.starts_with(&ws) && l.trim_end().ends_with('*')),
        "the default workspace survives a new login of the same platform: {table}"
    );

    // A plain logout forgets the token; --revoke also revokes it.
    let out = shell.ok(&["logout"]).await?;
    ensure!(out.contains("stays valid"), "{out}");
    ensure!(!shell.profile_path().exists());
    ensure!(me(&platform, &second).await? == StatusCode::OK);
    let error = shell.fails(&["workspaces", "list"]).await?;
    ensure!(
        error.to_string()
            == "not logged in to http://127.0.0.1:3000: run `refract login` or set REFRACT_TOKEN",
        "{error:#}"
    );
    shell.login(&platform.url, "ada@example.com").await?;
    let third = shell.stored_token()?;
    let (result, out) = shell
        .run(
            &["logout", "--revoke", "--password-stdin"],
            &format!("{PASSWORD}\n"),
        )
        .await;
    result.with_context(|| out.clone())?;
    ensure!(out.contains("revoked"), "{out}");
    ensure!(me(&platform, &third).await? == StatusCode::UNAUTHORIZED);
    ensure!(!shell.profile_path().exists());
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automations_apply_from_yaml_keep_versions_and_roll_back() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start(data.path()).await?;
    platform.client().signed_up("ada@example.com").await?;
    let home = tempfile::tempdir()?;
    let shell = Shell::new(home.path());
    shell.login(&platform.url, "ada@example.com").await?;
    let ws = shell.json(&["workspaces", "create", "Automations"]).await?["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let at = ["--workspace", ws.as_str()];

    // The file has no slug: its name gives it.
    let file = shell.write("hello.yml", HELLO_V1)?;
    let file = file.to_str().context("a UTF-8 path")?;
    let out = shell
        .ok(&[&["automations", "apply", "-f", file][..], &at].concat())
        .await?;
    ensure!(out.starts_with("Created automation hello."), "{out}");
    ensure!(
        out.contains(&format!(
            "Webhook: {}/v2/workspaces/{ws}/webhooks/hello",
            platform.url
        )),
        "{out}"
    );
    answers(
        &platform,
        &ws,
        "hello",
        json!({"message": "Hello Ada", "v": 1}),
    )
    .await?;

    // The same slug again: an update, and the file's absent description is cleared.
    std::fs::write(file, HELLO_V2)?;
    let saved = shell
        .json(&[&["automations", "apply", "-f", file][..], &at].concat())
        .await?;
    ensure!(
        saved["slug"] == "hello" && saved.get("description").is_none(),
        "{saved}"
    );
    answers(
        &platform,
        &ws,
        "hello",
        json!({"message": "Hi Ada", "v": 2}),
    )
    .await?;
    // Applying an unchanged file keeps no version.
    let out = shell
        .ok(&[&["automations", "apply", "-f", file][..], &at].concat())
        .await?;
    ensure!(out.starts_with("Updated automation hello."), "{out}");

    let got = shell
        .json(&[&["automations", "get", "hello"][..], &at].concat())
        .await?;
    ensure!(
        got["output"] == json!({"message": "{{greeting}}", "v": 2}),
        "{got}"
    );
    let yaml = shell
        .ok(&[&["automations", "get", "hello"][..], &at].concat())
        .await?;
    ensure!(
        yaml.contains("slug: hello") && yaml.contains("value: Hi {{body.name}}"),
        "{yaml}"
    );
    let listed = shell
        .ok(&[&["automations", "list"][..], &at].concat())
        .await?;
    let row = listed
        .lines()
        .find(|l| l.starts_with("hello "))
        .with_context(|| format!("no row for hello: {listed}"))?;
    ensure!(
        row.contains("Hello") && row.contains("dsl") && row.contains("endpoint:hello"),
        "{listed}"
    );

    let versions = shell
        .json(&[&["automations", "versions", "hello"][..], &at].concat())
        .await?;
    let numbers: Vec<u64> = versions["versions"]
        .as_array()
        .context("no versions")?
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    ensure!(numbers == [1], "one save, one version: {versions}");
    ensure!(
        versions["versions"][0]["description"] == "first",
        "{versions}"
    );
    let table = shell
        .ok(&[&["automations", "versions", "hello"][..], &at].concat())
        .await?;
    ensure!(
        table
            .lines()
            .any(|l| l.starts_with("1 ") && l.contains("first")),
        "{table}"
    );
    ensure!(table.contains("kept as version 2"), "{table}");

    let out = shell
        .ok(&[&["automations", "rollback", "hello", "1"][..], &at].concat())
        .await?;
    ensure!(
        out.starts_with("Restored automation hello to version 1"),
        "{out}"
    );
    answers(
        &platform,
        &ws,
        "hello",
        json!({"message": "Hello Ada", "v": 1}),
    )
    .await?;
    let versions = shell
        .json(&[&["automations", "versions", "hello"][..], &at].concat())
        .await?;
    ensure!(
        versions["versions"].as_array().map(Vec::len) == Some(2),
        "the rollback kept what it replaced: {versions}"
    );

    // Errors: the API's code, and the message the binary prints.
    let error = shell
        .fails(&[&["automations", "get", "nope"][..], &at].concat())
        .await?;
    ensure!(api_code(&error)? == "ObjectNotFoundError", "{error:#}");
    ensure!(
        refract::commands::error_message(&error).starts_with("error: ObjectNotFoundError: "),
        "{}",
        refract::commands::error_message(&error)
    );
    let error = shell
        .fails(&[&["automations", "rollback", "hello", "99"][..], &at].concat())
        .await?;
    ensure!(api_code(&error)? == "ObjectNotFoundError", "{error:#}");
    let broken = shell.write("broken.yml", "name: Broken\ndo:\n  - nope: 1\n")?;
    let error = shell
        .fails(
            &[
                &[
                    "automations",
                    "apply",
                    "-f",
                    broken.to_str().context("path")?,
                ][..],
                &at,
            ]
            .concat(),
        )
        .await?;
    let code = api_code(&error)?;
    ensure!(code.starts_with("Invalid"), "{error:#}");
    let error = shell.fails(&["automations", "list"]).await?;
    ensure!(
        error
            .to_string()
            .starts_with("no workspace: pass --workspace"),
        "{error:#}"
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_a_file_then_import_into_another_workspace() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start(data.path()).await?;
    platform.client().signed_up("ada@example.com").await?;
    let home = tempfile::tempdir()?;
    let shell = Shell::new(home.path());
    shell.login(&platform.url, "ada@example.com").await?;
    let source = shell
        .json(&["workspaces", "create", "Source", "--use"])
        .await?["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let target = shell.json(&["workspaces", "create", "Target"]).await?["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let file = shell.write("greeter.yml", &format!("slug: hello\n{HELLO_V1}"))?;
    shell
        .ok(&["automations", "apply", "-f", file.to_str().context("path")?])
        .await?;

    let zip = home.path().join("source.zip");
    let zip_arg = zip.to_str().context("path")?;
    let out = shell.ok(&["export", "-o", zip_arg]).await?;
    ensure!(
        out.starts_with(&format!("Exported workspace {source} to ")),
        "{out}"
    );
    let bytes = std::fs::read(&zip)?;
    ensure!(bytes.starts_with(b"PK"), "not a zip");

    let report = shell
        .json(&["import", zip_arg, "--workspace", &target])
        .await?;
    ensure!(
        report["errors"] == json!([])
            && report["imported"]
                .as_array()
                .is_some_and(|i| i.contains(&json!("automations/hello.yml"))),
        "{report}"
    );
    let imported = shell
        .json(&["automations", "get", "hello", "--workspace", &target])
        .await?;
    ensure!(imported["output"]["v"] == 1, "{imported}");
    answers(
        &platform,
        &target,
        "hello",
        json!({"message": "Hello Ada", "v": 1}),
    )
    .await?;

    // An archive with a broken file: the report is printed, and the command fails.
    let broken = home.path().join("broken.zip");
    {
        let mut archive = zip::ZipWriter::new(std::fs::File::create(&broken)?);
        let options = zip::write::SimpleFileOptions::default();
        // index.yml at the root: a lone folder would be taken for the export's top folder.
        archive.start_file("index.yml", options)?;
        archive.write_all(b"name: Broken export\n")?;
        archive.start_file("automations/good.yml", options)?;
        archive.write_all(b"name: Good\ndo: []\noutput: {ok: true}\n")?;
        archive.start_file("automations/bad.yml", options)?;
        archive.write_all(b"name: Bad\ndo:\n  - nope: 1\n")?;
        archive.finish()?;
    }
    let broken_arg = broken.to_str().context("path")?;
    let (result, out) = shell
        .run(&["import", broken_arg, "--workspace", &target], "")
        .await;
    let error = result
        .err()
        .with_context(|| format!("an import with errors succeeded: {out}"))?;
    ensure!(
        error.to_string() == format!("1 file(s) of {broken_arg} were not imported"),
        "{error:#}"
    );
    ensure!(out.contains("imported automations/good.yml"), "{out}");
    ensure!(
        out.lines().any(|l| l
            .trim_start()
            .starts_with("failed   automations/bad.yml: Invalid")),
        "{out}"
    );

    // A workspace the caller cannot see: the API's refusal, not a file.
    let error = shell
        .fails(&["export", "-o", "-", "--workspace", "not-a-workspace"])
        .await?;
    let code = api_code(&error)?;
    ensure!(
        code == "ObjectNotFoundError" || code == "ForbiddenError",
        "{error:#}"
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_streams_a_component_with_the_environments_token() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start(data.path()).await?;
    let ada = platform.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("Deploy").await?;
    let home = tempfile::tempdir()?;
    let mut shell = Shell::new(home.path());
    // No profile: URL, session token and workspace come from the environment.
    shell.env.insert("REFRACT_URL".into(), platform.url.clone());
    shell.env.insert(
        "REFRACT_TOKEN".into(),
        ada.token.clone().context("no token")?,
    );
    shell.env.insert("REFRACT_WORKSPACE".into(), ws.clone());
    let wasm = home.path().join("echo.wasm");
    std::fs::write(&wasm, example("webhook-echo")?)?;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk/examples/webhook-echo/refract.toml");
    let args = [
        "deploy",
        wasm.to_str().context("path")?,
        "--manifest",
        manifest.to_str().context("path")?,
    ];
    let out = shell.ok(&args).await?;
    ensure!(
        out.trim() == format!("{}/v2/workspaces/{ws}/webhooks/echo", platform.url),
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = platform
            .client()
            .json(
                Method::POST,
                &format!("/v2/workspaces/{ws}/webhooks/echo"),
                Some(json!({"hello": "cli"})),
            )
            .await?;
        // The echo answers 201 Created.
        if status.is_success() && body["body"] == json!({"hello": "cli"}) {
            break;
        }
        ensure!(Instant::now() < deadline, "echo answers {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deploying again updates the automation and uploads the component again.
    let uploaded = shell.json(&args).await?;
    ensure!(
        uploaded["slug"] == "echo" && uploaded["component"]["digest"].is_string(),
        "{uploaded}"
    );
    platform.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_platforms_and_bad_arguments_say_what_failed() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let shell = Shell::new(home.path());
    // Nothing listens on port 9 of loopback.
    let error = shell
        .fails(&[
            "workspaces",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--token",
            "at:x",
        ])
        .await?;
    let message = refract::commands::error_message(&error);
    ensure!(
        message.starts_with("error: GET http://127.0.0.1:9/v2/workspaces failed"),
        "{message}"
    );
    let error = shell.fails(&["automations", "rollback", "hello"]).await?;
    ensure!(error.to_string().contains("<VERSION>"), "{error:#}");
    let error = shell.fails(&["serve"]).await?;
    ensure!(
        error.to_string() == "not a command that calls the API",
        "{error:#}"
    );
    // Without --password-stdin and without a terminal, no password is read from anywhere.
    let (result, _) = shell
        .run(
            &["login", "--url", "http://127.0.0.1:9", "--email", "a@b.c"],
            "secret\n",
        )
        .await;
    let error = result
        .err()
        .context("a login without a password succeeded")?;
    ensure!(error.to_string().contains("--password-stdin"), "{error:#}");
    Ok(())
}

/// `refract new rust NAME` makes a crate that `refract deploy` builds for wasm32-wasip2 and
/// uploads; the automation answers like the webhook echo it was made from. (The examples'
/// lockfile is copied in, so cargo resolves nothing new.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refract_new_rust_then_deploy_builds_uploads_and_answers() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let platform = Platform::start(data.path()).await?;
    let ada = platform.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("New").await?;
    let home = tempfile::tempdir()?;
    let checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let folder = refract::scaffold::new(&refract::scaffold::New {
        language: refract::scaffold::Language::Rust,
        name: "rust-hook".into(),
        parent: home.path().to_path_buf(),
        sdk_path: Some(checkout.join("guest-sdk")),
        sdk_git: None,
    })?;
    std::fs::copy(
        checkout.join("guest-sdk/examples/Cargo.lock"),
        folder.join("Cargo.lock"),
    )?;
    let mut shell = Shell::new(home.path());
    shell.env.insert("REFRACT_URL".into(), platform.url.clone());
    shell.env.insert(
        "REFRACT_TOKEN".into(),
        ada.token.clone().context("no token")?,
    );
    shell.env.insert("REFRACT_WORKSPACE".into(), ws.clone());
    let uploaded = shell
        .json(&["deploy", folder.to_str().context("path")?])
        .await?;
    ensure!(
        uploaded["slug"] == "rust-hook"
            && uploaded["component"]["status"] == "ready"
            && uploaded["component"]["language"] == "rust",
        "{uploaded}"
    );
    let (status, body) = platform
        .client()
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/webhooks/rust-hook"),
            Some(json!({"hello": "new"})),
        )
        .await?;
    ensure!(
        status == StatusCode::CREATED && body["body"] == json!({"hello": "new"}),
        "{status} {body}"
    );
    platform.stop().await
}
