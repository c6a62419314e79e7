//! Which event types a subscription receives.

use refract_core::type_is_under;

/// A set of patterns: an exact type (`orders.created`), a prefix (`workspaces.*`, matching
/// `workspaces` and everything under it), or `*` for everything. Empty matches everything.
/// [`TypeFilter::except`] turns the set around: every type but those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    exact: Vec<String>,
    prefixes: Vec<String>,
    all: bool,
    negated: bool,
}

impl TypeFilter {
    /// Every event.
    pub fn all() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// Events matching any of `patterns`.
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut filter = Self::default();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            match pattern.strip_suffix('*') {
                Some("") => filter.all = true,
                Some(prefix) => filter
                    .prefixes
                    .push(prefix.trim_end_matches('.').to_string()),
                None => filter.exact.push(pattern.to_string()),
            }
        }
        if filter.exact.is_empty() && filter.prefixes.is_empty() {
            filter.all = true;
        }
        filter
    }

    /// Events matching none of `patterns` (every event when there are none). A subscriber
    /// skips the others before decoding them.
    pub fn except<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns = patterns.into_iter().peekable();
        if patterns.peek().is_none() {
            return Self::all();
        }
        Self {
            negated: true,
            ..Self::new(patterns)
        }
    }

    /// Whether an event of type `event_type` passes.
    pub fn matches(&self, event_type: &str) -> bool {
        let listed = self.all
            || self.exact.iter().any(|t| t == event_type)
            || self.prefixes.iter().any(|p| type_is_under(event_type, p));
        listed != self.negated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_all() {
        let f = TypeFilter::new(["orders.created", "workspaces.*"]);
        assert!(f.matches("orders.created"));
        assert!(!f.matches("orders.created.v2"));
        assert!(f.matches("workspaces.automations.created"));
        assert!(f.matches("workspaces"));
        assert!(!f.matches("workspacesX"));
        assert!(TypeFilter::new(Vec::<String>::new()).matches("x"));
        assert!(TypeFilter::new(["*"]).matches("anything"));
    }

    #[test]
    fn except_passes_everything_but_the_patterns() {
        let f = TypeFilter::except(["error", "runtime.automations.*"]);
        assert!(!f.matches("error"));
        assert!(!f.matches("runtime.automations.executed"));
        assert!(!f.matches("runtime.automations"));
        assert!(f.matches("runtime.fetch.failed"));
        assert!(f.matches("errors"));
        assert!(f.matches("orders.created"));
        assert!(TypeFilter::except(Vec::<String>::new()).matches("x"));
        assert!(!TypeFilter::except(["*"]).matches("x"));
    }
}
