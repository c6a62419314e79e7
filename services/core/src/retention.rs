//! How long a workspace's history is kept: one rule for the events service, which deletes by
//! it, and the runtime, whose quotas view shows it. A workspace sets its own limit in its
//! config, `config.value.eventsRetentionDays` (clamped to 1..=[`MAX_DAYS`]); others keep
//! their events [`DEFAULT_DAYS`].

use serde_json::Value;

/// How long events are kept when the workspace does not say.
pub const DEFAULT_DAYS: u32 = 90;
/// Longest retention a workspace may ask for (ten years).
pub const MAX_DAYS: u32 = 3_650;

/// The retention a workspace's `config.value` asks for, within bounds; `None` when it does
/// not ask (absent, or not a whole number).
pub fn configured_days(config_value: &Value) -> Option<u32> {
    let days = config_value.get("eventsRetentionDays")?.as_u64()?;
    Some(u32::try_from(days).unwrap_or(MAX_DAYS).clamp(1, MAX_DAYS))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_workspace_config_sets_its_retention_within_bounds() {
        let days = |v| configured_days(&json!({ "eventsRetentionDays": v }));
        assert_eq!(days(json!(7)), Some(7));
        assert_eq!(days(json!(0)), Some(1));
        assert_eq!(days(json!(99_999)), Some(MAX_DAYS));
        assert_eq!(days(json!(u64::MAX)), Some(MAX_DAYS));
        assert_eq!(days(json!("7")), None);
        assert_eq!(configured_days(&json!({"name": "x"})), None);
        assert_eq!(configured_days(&Value::Null), None);
    }
}
