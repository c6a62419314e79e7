//! Where the backends are: in process (embedded mode) or a list of HTTP instances with
//! failover (distributed mode), and the marks of instances that refused a connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::ConfigError;

/// Where one backend service is.
#[derive(Clone)]
pub enum Upstream {
    /// Embedded mode: the backend's router, called in process. The header contract of §1.5
    /// holds at this boundary exactly as over HTTP.
    InProcess(axum::Router),
    /// Distributed mode: the instances of the backend, in order of preference.
    Http(Arc<Instances>),
}

impl Upstream {
    /// Distributed mode: `urls` are the base URLs of the backend's instances
    /// (`http://runtime-1:3002`), without a trailing path (the request path is appended as is),
    /// in order of preference. `setting` names them in errors.
    pub fn http<S: Into<String>>(
        setting: &'static str,
        urls: impl IntoIterator<Item = S>,
    ) -> Result<Upstream, ConfigError> {
        Instances::new(setting, urls.into_iter().map(Into::into).collect())
            .map(|i| Upstream::Http(Arc::new(i)))
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::InProcess(_) => f.write_str("InProcess(router)"),
            Upstream::Http(instances) => write!(f, "Http({:?})", instances.urls),
        }
    }
}

/// How long an instance that refused a connection is passed over: long enough not to pay a
/// failed connection on every request, short enough to find a restarted instance soon.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// The instances of one backend in distributed mode. A request goes to the first instance that
/// is not marked down; one that refuses a connection is marked down for `DOWN_FOR`, and a
/// request without a body moves on to the next at once (one with a body cannot be sent twice:
/// it gets 503 and `Retry-After`, and its retry finds the next instance). When every instance is
/// marked down they are all tried anyway, so a backend that comes back is found at once.
///
/// Listing the same instances in another order on each gateway spreads the load; listing more
/// than one means a dead instance costs a failed connection, not an outage.
pub struct Instances {
    pub(super) urls: Vec<String>,
    /// Per instance: until when, in ms since `epoch`, it is passed over (0: up).
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl Instances {
    /// Instances per backend: the down set is a 64-bit mask.
    const MAX: usize = 64;

    fn new(setting: &'static str, urls: Vec<String>) -> Result<Instances, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid { setting, reason };
        if urls.is_empty() || urls.len() > Self::MAX {
            return Err(invalid(format!(
                "give 1 to {} instance URLs, not {}",
                Self::MAX,
                urls.len()
            )));
        }
        for url in &urls {
            let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("{url:?}: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
                return Err(invalid(format!(
                    "{url:?}: not an http:// or https:// URL with a host"
                )));
            }
        }
        let down_until = urls.iter().map(|_| AtomicU64::new(0)).collect();
        let urls = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect();
        Ok(Instances {
            urls,
            down_until,
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The instances to try, in turn: those up in the order given, then those marked down.
    pub(super) fn order(&self) -> impl Iterator<Item = usize> + use<> {
        let now = self.now_ms();
        let down = self
            .down_until
            .iter()
            .enumerate()
            .filter(|(_, until)| until.load(Ordering::Relaxed) > now)
            .fold(0u64, |mask, (i, _)| mask | 1 << i);
        let n = self.urls.len();
        let is_down = move |i: &usize| down & (1 << i) != 0;
        (0..n)
            .filter(move |i| !is_down(i))
            .chain((0..n).filter(is_down))
    }

    /// Instance `i` refused a connection.
    pub(super) fn failed(&self, i: usize) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(DOWN_FOR.as_millis()).unwrap_or(u64::MAX));
        self.down_until[i].store(until, Ordering::Relaxed);
    }
}

/// The three backends the gateway dispatches to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// Workspaces, automations, security, apps, versions, imports.
    pub workspaces: Upstream,
    /// Webhooks and test runs.
    pub runtime: Upstream,
    /// Event history, emits, the live socket and search.
    pub events: Upstream,
}
