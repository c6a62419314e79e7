//! Validated id newtypes. Ids are opaque strings (`spec/http-api.md` §1.1); the newtypes keep
//! a workspace id from being passed where a user id is expected, and validate once at the
//! boundary so the rest of the code can trust them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ValidationError;

/// Longest id accepted, in bytes. Ids end up in stream keys, cache keys and log lines.
pub const MAX_ID_LEN: usize = 64;

fn check_id(field: &'static str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(ValidationError::invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ValidationError::invalid(
            field,
            "may contain only A-Z, a-z, 0-9, '_' and '-'",
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` (`^[A-Za-z0-9_-]{1,64}$`).
            pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                check_id($field, &value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A workspace, the unit of tenancy.
    WorkspaceId, "workspaceId"
);
id_type!(
    /// A user account (anonymous sessions have one too).
    UserId, "userId"
);
id_type!(
    /// A login session, or `at:<tokenId>`-style ids mapped to this charset.
    SessionId, "sessionId"
);
id_type!(
    /// The id shared by everything one trigger causes (`spec/http-api.md` §1.4).
    CorrelationId, "correlationId"
);

impl CorrelationId {
    /// A fresh id: 32 lowercase hex characters.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// An event id: the broker's entry id in the workspace's partition (`<ms>-<seq>`), assigned
/// once at first publish.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Validates the `<ms>-<seq>` shape.
    pub fn new(value: impl Into<String>) -> Result<Self, ValidationError> {
        let value = value.into();
        Self::parse_parts(&value)
            .map(|_| Self(value))
            .ok_or_else(|| {
                ValidationError::invalid("id", "must look like <milliseconds>-<sequence>")
            })
    }

    /// Builds the id of entry `seq` at millisecond `ms`.
    pub fn from_parts(ms: u64, seq: u64) -> Self {
        Self(format!("{ms}-{seq}"))
    }

    /// The `(milliseconds, sequence)` pair, which orders ids within one partition.
    pub fn parts(&self) -> (u64, u64) {
        // Validated at construction.
        Self::parse_parts(&self.0).unwrap_or((0, 0))
    }

    fn parse_parts(value: &str) -> Option<(u64, u64)> {
        let (ms, seq) = value.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The id as text (`<ms>-<seq>`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_charset_only() {
        assert!(WorkspaceId::new("ws_01-AB").is_ok());
        assert!(WorkspaceId::new("").is_err());
        assert!(WorkspaceId::new("a".repeat(65)).is_err());
        let err = UserId::new("bob smith").unwrap_err();
        assert!(err.to_string().starts_with("userId:"), "{err}");
        assert!(serde_json::from_str::<WorkspaceId>("\"a/b\"").is_err());
    }

    #[test]
    fn correlation_ids_are_32_lowercase_hex_and_unique() {
        let a = CorrelationId::generate();
        let b = CorrelationId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn event_ids_order_by_parts() {
        let id = EventId::new("1700000000000-7").unwrap();
        assert_eq!(id.parts(), (1_700_000_000_000, 7));
        assert!(EventId::new("abc").is_err());
        assert!(EventId::new("12-").is_err());
        assert_eq!(EventId::from_parts(5, 2).as_str(), "5-2");
    }
}
