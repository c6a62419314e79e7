//! The binary's settings, layered: defaults < TOML file < `REFRACT_*` env vars < flags.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use refract_http::gateway_key::GatewayKey;
use refract_runtime::SandboxPolicy;
use refract_secrets::Keyring;
use serde::{Deserialize, Serialize};

/// Where `refract serve` listens by default: loopback only, so a fresh install exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default data folder of the embedded mode, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "refract-data";
/// The embedded mode's secrets keyring, in the data folder.
pub const KEYRING_FILE: &str = "secrets.keyring";
/// Default key namespace in shared Redis/caches, so several platforms can share a server.
pub const DEFAULT_NAMESPACE: &str = "refract";

/// Every setting of the `refract` binary, whatever the mode; see [`Config::load`] for how the
/// layers combine. An unknown key in the file is an error, not silently ignored.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the process's HTTP listener binds.
    pub listen: SocketAddr,
    /// Folder of the embedded mode's database and files.
    pub data_dir: PathBuf,
    /// Broker URL: `memory://` (embedded) or `redis://…`.
    pub broker_url: Option<String>,
    /// Document store URL: `sqlite://…` (embedded), `postgres://…`, `mongodb://…`.
    pub database_url: Option<String>,
    /// Cache URL: `sqlite://…` (embedded, durable keys persisted), `memory://`, `redis://…`.
    pub cache_url: Option<String>,
    /// File storage URL: `file://…` (embedded), `s3://bucket/prefix`, `memory://`.
    pub files_url: Option<String>,
    /// Key namespace in the broker and cache.
    pub namespace: String,
    /// This instance's name in consumer groups (default: a random id per process).
    pub instance: Option<String>,
    /// The bearer key operators present to read `/metrics` (`Authorization: Bearer <key>`).
    /// Unset, the public listener (gateway, `refract serve`) does not serve `/metrics` at all,
    /// and backends serve it on their private port to anyone who reaches it.
    pub internal_api_key: Option<String>,
    /// Distributed mode: the secret every gateway sends its backends and every backend
    /// requires (`x-refract-gateway-key`), at least 16 characters, the same on every process.
    /// The embedded mode (`refract serve`) ignores it: it makes a random one per process.
    pub gateway_key: Option<String>,
    /// Distributed mode: `false` lets a backend run without `gateway_key`, on a loopback
    /// listen address only (local development), and its gateways send none.
    pub require_gateway_key: bool,
    /// The keys workspace secrets are sealed with (AES-256-GCM): `<id>:<base64 of 32 bytes>`
    /// entries separated by commas, the sealing key first; older keys stay listed so the values
    /// they sealed still open. Required by the workspaces and runtime services in distributed
    /// mode (the same on every one); `refract serve` without it keeps a key file of its own in
    /// the data folder.
    pub secrets_keyring: Option<String>,
    /// Backend URLs the gateway forwards to in distributed mode.
    pub workspaces_url: Option<String>,
    /// The runtime backend's URL the gateway forwards to in distributed mode.
    pub runtime_url: Option<String>,
    /// The events backend's URL the gateway forwards to in distributed mode.
    pub events_url: Option<String>,
    /// Lets automations `fetch` loopback addresses. For local development and tests only.
    pub allow_loopback_fetch: bool,
    /// Marks the session cookie `Secure` (needs HTTPS in front).
    pub secure_cookies: bool,
    /// Turns every HTTP rate limiter of the gateway off (`DISABLE_RATE_LIMIT`). Tests and
    /// benchmarks only: the limits protect logins and the sandboxes.
    pub disable_rate_limit: bool,
    /// Previous versions kept per automation (`AUTOMATION_VERSIONS`, 1 to 100; default 20).
    pub automation_versions: usize,
    /// Emails of the platform's super-admins (validated accounts only).
    pub super_admin_emails: Vec<String>,
    /// The public base URL of the gateway (`https://api.example.org`): OpenID Connect
    /// providers send the browser back to `<public_url>/v2/login/callback`. Unset, it is taken
    /// from each request's `Host`.
    pub public_url: Option<String>,
    /// Addresses and CIDR networks of the load balancers in front of the gateway
    /// (`TRUSTED_PROXIES`; comma-separated in the env var): only they may say who the client is
    /// in `X-Forwarded-For`/`-Proto`/`-Host`. Empty, the socket peer is the client.
    pub trusted_proxies: Vec<String>,
    /// The origin webhooks are served from (`https://hooks.example.com`), a host name of its
    /// own: other hosts redirect webhooks there, and it serves nothing but webhooks.
    pub webhooks_origin: Option<String>,
    /// `[auth_providers.<name>]`: external OpenID Connect identity providers, offered at
    /// `GET /v2/login?provider=<name>`.
    pub auth_providers: BTreeMap<String, AuthProvider>,
    /// What automations may do (`[sandbox]`: egress allow-list, run limits), in every workspace.
    pub sandbox: SandboxPolicy,
    /// `[workspace_sandbox.<workspace id>]`: settings that replace those of `[sandbox]` for one
    /// workspace; the others are inherited.
    pub workspace_sandbox: BTreeMap<String, toml::Table>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |u: &Option<String>| u.as_deref().map(refract_broker::redact);
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("broker_url", &redact(&self.broker_url))
            .field("database_url", &redact(&self.database_url))
            .field("cache_url", &redact(&self.cache_url))
            .field("files_url", &self.files_url)
            .field("namespace", &self.namespace)
            .field("instance", &self.instance)
            .field(
                "internal_api_key",
                &self.internal_api_key.as_ref().map(|_| "***"),
            )
            .field("gateway_key", &self.gateway_key.as_ref().map(|_| "***"))
            .field("require_gateway_key", &self.require_gateway_key)
            .field(
                "secrets_keyring",
                &self.secrets_keyring.as_ref().map(|_| "***"),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 3000))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            broker_url: None,
            database_url: None,
            cache_url: None,
            files_url: None,
            namespace: DEFAULT_NAMESPACE.to_string(),
            instance: None,
            internal_api_key: None,
            gateway_key: None,
            require_gateway_key: true,
            secrets_keyring: None,
            workspaces_url: None,
            runtime_url: None,
            events_url: None,
            allow_loopback_fetch: false,
            secure_cookies: false,
            disable_rate_limit: false,
            automation_versions: refract_workspaces::config::DEFAULT_AUTOMATION_VERSIONS,
            super_admin_emails: Vec::new(),
            public_url: None,
            trusted_proxies: Vec::new(),
            webhooks_origin: None,
            auth_providers: BTreeMap::new(),
            sandbox: SandboxPolicy::default(),
            workspace_sandbox: BTreeMap::new(),
        }
    }
}

/// One OpenID Connect identity provider (`[auth_providers.<name>]`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthProvider {
    /// The issuer URL (its `/.well-known/openid-configuration` is read at the first login).
    pub issuer: String,
    /// The client id this platform is registered under at the provider.
    pub client_id: String,
    /// The client secret; better given as `REFRACT_AUTH_PROVIDERS_<NAME>_CLIENT_SECRET` than
    /// written in the file. Unset for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Scopes asked (default `openid email profile`).
    pub scopes: Vec<String>,
    /// Lets a first login join the local account with the same, provider-verified, email.
    pub link_by_email: bool,
    /// Text of the login button.
    pub label: Option<String>,
}

impl Default for AuthProvider {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: None,
            scopes: refract_gateway::oidc::DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            link_by_email: false,
            label: None,
        }
    }
}

impl std::fmt::Debug for AuthProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The env var that may carry provider `name`'s client secret.
pub fn client_secret_var(name: &str) -> String {
    format!(
        "REFRACT_AUTH_PROVIDERS_{}_CLIENT_SECRET",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Default)]
pub struct Flags {
    /// `--listen`: replaces [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// `--data-dir`: replaces [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Builds the config from its layers. `env` is the process environment (only
    /// `REFRACT_<SETTING>` for known settings is read).
    pub fn load(
        file: Option<&Path>,
        env: &HashMap<String, String>,
        flags: Flags,
    ) -> anyhow::Result<Self> {
        let mut table =
            toml::Table::try_from(Config::default()).context("serializing the defaults")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config file {}", path.display()))?;
            let overrides: toml::Table = toml::from_str(&text)
                .with_context(|| format!("parsing the config file {}", path.display()))?;
            for (key, value) in overrides {
                if !table.contains_key(&key) && !is_optional(&key) {
                    bail!("config file {}: unknown setting `{key}`", path.display());
                }
                table.insert(key, value);
            }
        }
        for key in Self::settings() {
            if let Some(raw) = env.get(&format!("REFRACT_{}", key.to_ascii_uppercase())) {
                let value = match table.get(*key) {
                    Some(toml::Value::Array(_)) => env_list(raw),
                    _ => env_value(raw),
                };
                table.insert(key.to_string(), value);
            }
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid setting: {}", e.message()))?;
        let most = refract_workspaces::config::MAX_AUTOMATION_VERSIONS;
        if !(1..=most).contains(&config.automation_versions) {
            bail!("invalid setting: automation_versions must be 1 to {most}");
        }
        if let Some(listen) = flags.listen {
            config.listen = listen;
        }
        if let Some(dir) = flags.data_dir {
            config.data_dir = dir;
        }
        for (name, provider) in &mut config.auth_providers {
            if let Some(secret) = env.get(&client_secret_var(name)) {
                provider.client_secret = Some(secret.clone());
            }
        }
        Ok(config)
    }

    fn settings() -> &'static [&'static str] {
        &[
            "listen",
            "data_dir",
            "broker_url",
            "database_url",
            "cache_url",
            "files_url",
            "namespace",
            "instance",
            "internal_api_key",
            "gateway_key",
            "require_gateway_key",
            "secrets_keyring",
            "workspaces_url",
            "runtime_url",
            "events_url",
            "allow_loopback_fetch",
            "secure_cookies",
            "disable_rate_limit",
            "automation_versions",
            "super_admin_emails",
            "public_url",
            "trusted_proxies",
            "webhooks_origin",
        ]
    }

    /// The configured gateway key, checked (distributed mode).
    pub fn gateway_key(&self) -> anyhow::Result<Option<GatewayKey>> {
        self.gateway_key
            .as_deref()
            .map(GatewayKey::new)
            .transpose()
            .map_err(anyhow::Error::from)
    }

    /// The keyring of workspace secrets: `secrets_keyring`, else, when `embedded`, the key
    /// file `secrets.keyring` in the data folder (made on first start, readable by its owner
    /// only). A distributed-mode service without one refuses to start: a key of its own would
    /// seal what no other process can open.
    pub fn keyring(&self, embedded: bool) -> anyhow::Result<Keyring> {
        if let Some(text) = &self.secrets_keyring {
            return Keyring::parse(text).context("secrets_keyring (REFRACT_SECRETS_KEYRING)");
        }
        if !embedded {
            bail!(
                "the workspaces and runtime services need secrets_keyring (REFRACT_SECRETS_KEYRING), the same \
                 on every one: `<id>:<base64 of 32 random bytes>`, e.g. `k1:$(openssl rand -base64 32)`"
            );
        }
        let path = self.data_dir.join(KEYRING_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return Keyring::parse(&text)
                    .with_context(|| format!("reading {}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let (keyring, text) = Keyring::generate("k1")?;
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating the data folder {}", self.data_dir.display()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(keyring)
    }

    /// The broker URL, defaulting to the embedded one.
    pub fn broker(&self) -> String {
        self.broker_url
            .clone()
            .unwrap_or_else(|| "memory://".into())
    }

    /// The document store URL, defaulting to SQLite in the data folder.
    pub fn database(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("refract.db").display()))
    }

    /// The cache URL, defaulting to the in-process cache persisted in the data folder.
    pub fn cache(&self) -> String {
        self.cache_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("cache.db").display()))
    }

    /// The file storage URL, defaulting to the data folder.
    pub fn files(&self) -> String {
        self.files_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("files").display()))
    }

    /// The sandbox policy of each workspace of `[workspace_sandbox]`: `[sandbox]` with the
    /// workspace's settings in place of the platform's.
    pub fn workspace_sandboxes(&self) -> anyhow::Result<HashMap<String, SandboxPolicy>> {
        let platform = toml::Table::try_from(&self.sandbox).context("serializing [sandbox]")?;
        self.workspace_sandbox
            .iter()
            .map(|(id, overrides)| {
                let mut merged = platform.clone();
                merged.extend(overrides.clone());
                let policy = merged.try_into().map_err(|e: toml::de::Error| {
                    anyhow::anyhow!(
                        "invalid setting in [workspace_sandbox.{id}]: {}",
                        e.message()
                    )
                })?;
                Ok((id.clone(), policy))
            })
            .collect()
    }

    /// The gateway's view of `[auth_providers]`.
    pub fn oidc_providers(&self) -> Vec<refract_gateway::oidc::ProviderConfig> {
        self.auth_providers
            .iter()
            .map(|(name, p)| refract_gateway::oidc::ProviderConfig {
                name: name.clone(),
                issuer: p.issuer.clone(),
                client_id: p.client_id.clone(),
                client_secret: p
                    .client_secret
                    .clone()
                    .map(refract_gateway::secrets::Secret::new),
                scopes: p.scopes.clone(),
                link_by_email: p.link_by_email,
                label: p.label.clone(),
            })
            .collect()
    }

    /// This instance's consumer name.
    pub fn instance(&self) -> String {
        self.instance
            .clone()
            .unwrap_or_else(|| format!("i-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
    }
}

/// A comma-separated env var as a TOML array of strings.
fn env_list(raw: &str) -> toml::Value {
    toml::Value::Array(
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| toml::Value::String(s.to_string()))
            .collect(),
    )
}

/// Optional settings are absent from the serialized defaults.
fn is_optional(key: &str) -> bool {
    Config::settings().contains(&key)
}

/// An env var's text as a TOML value: booleans and integers keep their type.
fn env_value(raw: &str) -> toml::Value {
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir =
            std::env::temp_dir().join(format!("refract-cfg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("refract.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:4000\"\nnamespace = \"from-file\"\nbroker_url = \"redis://h:1\"\n").unwrap();
        let env = HashMap::from([
            ("REFRACT_NAMESPACE".to_string(), "from-env".to_string()),
            (
                "REFRACT_ALLOW_LOOPBACK_FETCH".to_string(),
                "true".to_string(),
            ),
            (
                "REFRACT_SUPER_ADMIN_EMAILS".to_string(),
                "ada@example.com, bob@example.com".to_string(),
            ),
            ("REFRACT_TEST_REDIS_URL".to_string(), "ignored".to_string()),
            (
                "REFRACT_TRUSTED_PROXIES".to_string(),
                "10.0.0.0/8, 192.0.2.1".to_string(),
            ),
            (
                "REFRACT_WEBHOOKS_ORIGIN".to_string(),
                "https://hooks.example.com".to_string(),
            ),
        ]);
        let flags = Flags {
            listen: Some("127.0.0.1:5000".parse().unwrap()),
            data_dir: None,
        };
        let config = Config::load(Some(&file), &env, flags).unwrap();
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.namespace, "from-env");
        assert_eq!(config.broker(), "redis://h:1");
        assert!(config.allow_loopback_fetch);
        assert_eq!(
            config.super_admin_emails,
            ["ada@example.com", "bob@example.com"]
        );
        assert!(
            !config.disable_rate_limit,
            "rate limits are on unless turned off"
        );
        assert_eq!(config.trusted_proxies, ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(
            config.webhooks_origin.as_deref(),
            Some("https://hooks.example.com")
        );
        assert!(config.require_gateway_key && config.gateway_key.is_none());
        let env = HashMap::from([
            (
                "REFRACT_GATEWAY_KEY".to_string(),
                "0123456789abcdef-key".to_string(),
            ),
            (
                "REFRACT_REQUIRE_GATEWAY_KEY".to_string(),
                "false".to_string(),
            ),
        ]);
        let keyed = Config::load(None, &env, Flags::default()).unwrap();
        assert_eq!(
            keyed
                .gateway_key()
                .unwrap()
                .map(|k| k.expose().to_string())
                .as_deref(),
            Some("0123456789abcdef-key")
        );
        assert!(!keyed.require_gateway_key);
        assert!(
            !format!("{keyed:?}").contains("0123456789abcdef-key"),
            "the key is redacted"
        );
        let short = Config {
            gateway_key: Some("short".into()),
            ..Config::default()
        };
        assert!(
            short
                .gateway_key()
                .unwrap_err()
                .to_string()
                .contains("gateway_key")
        );
        assert!(config.database().starts_with("sqlite://refract-data"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn workspace_sandboxes_inherit_the_platform_policy() {
        let dir = tempfile_dir();
        let file = dir.join("refract.toml");
        std::fs::write(
            &file,
            "[sandbox]\nallow_hosts = [\"api.example.com\"]\nmax_emits = 5\n\n[workspace_sandbox.ws1]\nmax_memory_mib = 512\n",
        )
        .unwrap();
        let config = Config::load(Some(&file), &HashMap::new(), Flags::default()).unwrap();
        assert_eq!(config.sandbox.allow_hosts, ["api.example.com"]);
        let ws1 = &config.workspace_sandboxes().unwrap()["ws1"];
        assert_eq!(ws1.max_memory_mib, 512);
        assert_eq!(ws1.max_emits, 5, "inherited from [sandbox]");
        assert_eq!(ws1.allow_hosts, ["api.example.com"]);

        std::fs::write(&file, "[workspace_sandbox.ws1]\nmax_memroy_mib = 512\n").unwrap();
        let config = Config::load(Some(&file), &HashMap::new(), Flags::default()).unwrap();
        let err = config.workspace_sandboxes().unwrap_err().to_string();
        assert!(
            err.contains("[workspace_sandbox.ws1]") && err.contains("max_memroy_mib"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("refract-cfg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn identity_providers_come_from_the_file_and_their_secrets_from_the_env() {
        let dir = tempfile_dir();
        let file = dir.join("refract.toml");
        std::fs::write(
            &file,
            "public_url = \"https://api.example.org\"\n[auth_providers.corp-sso]\nissuer = \"https://idp.example.org\"\nclient_id = \"refract\"\nlink_by_email = true\n",
        )
        .unwrap();
        let env = HashMap::from([(client_secret_var("corp-sso"), "s3cret".to_string())]);
        let config = Config::load(Some(&file), &env, Flags::default()).unwrap();
        let providers = config.oidc_providers();
        assert_eq!(providers.len(), 1);
        let p = &providers[0];
        assert_eq!(
            (p.name.as_str(), p.issuer.as_str(), p.client_id.as_str()),
            ("corp-sso", "https://idp.example.org", "refract")
        );
        assert_eq!(p.client_secret.as_ref().map(|s| s.expose()), Some("s3cret"));
        assert_eq!(p.scopes, ["openid", "email", "profile"]);
        assert!(p.link_by_email);
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://api.example.org")
        );
        assert!(!format!("{:?}", config.auth_providers).contains("s3cret"));
        std::fs::write(
            &file,
            "[auth_providers.corp]\nissuer = \"https://idp.example.org\"\nclient_idd = \"x\"\n",
        )
        .unwrap();
        assert!(Config::load(Some(&file), &HashMap::new(), Flags::default()).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_settings_are_named() {
        let env = HashMap::from([("REFRACT_LISTEN".to_string(), "not an address".to_string())]);
        let err = Config::load(None, &env, Flags::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listen") || err.contains("socket address"),
            "{err}"
        );
        let dir =
            std::env::temp_dir().join(format!("refract-cfg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = Config::load(Some(&file), &HashMap::new(), Flags::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown setting `lisen`"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
