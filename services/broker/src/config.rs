//! Broker settings, shared by both implementations.

use std::time::Duration;

use refract_core::EventLimits;

use crate::BrokerError;

/// Default key namespace, so several platforms can share one Redis by choosing others.
pub const DEFAULT_NAMESPACE: &str = "refract";
/// Default number of partitions. Order holds within a partition (so within a workspace);
/// more partitions spread one busy Redis stream's load.
pub const DEFAULT_PARTITIONS: u32 = 4;
/// Default approximate length each partition is trimmed to: bounds the broker's memory while
/// keeping minutes of history for slow or restarting consumers.
pub const DEFAULT_MAX_LEN: usize = 100_000;
/// Default idle time after which a pending entry is taken from its (presumed dead) consumer,
/// and after which a failed delivery is tried again.
pub const DEFAULT_CLAIM_IDLE: Duration = Duration::from_secs(10);
/// Default number of deliveries before an entry is dead-lettered: enough for transient
/// failures, few enough that a poison event stops costing work quickly.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;
/// Default longest time one blocking read waits before the consumer checks for reclaimable
/// entries; must stay well under the claim idle time.
pub const DEFAULT_BLOCK: Duration = Duration::from_secs(1);
/// Default entries fetched per read.
pub const DEFAULT_BATCH: usize = 128;
/// Default bytes of events the in-process broker keeps once every group has read them (for
/// reads after an id, e.g. a client reconnecting): a burst of events must not stay in memory.
pub const DEFAULT_MEMORY_MAX_BYTES: usize = 32 << 20;
/// Default length the dead-letter stream is trimmed to.
pub const DEFAULT_DEAD_LETTER_MAX_LEN: usize = 10_000;

/// How a broker partitions, trims, retries and dead-letters; the defaults are the
/// `DEFAULT_*` constants above.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Prefix of every key (Redis) so several platforms can share a server.
    pub namespace: String,
    /// Number of partition streams events are spread over by workspace.
    pub partitions: u32,
    /// Approximate length each partition is trimmed to. Redis trims at this length whatever
    /// was read; the in-process broker trims only entries every consumer group has read.
    pub max_len: usize,
    /// Bytes of events the in-process broker keeps, over all partitions (it trims at `max_len`
    /// entries or at this, whichever comes first, and never an entry a group has not read).
    /// Redis ignores it: its memory is bounded by `max_len` and its own `maxmemory`.
    pub memory_max_bytes: usize,
    /// Idle time before a pending entry is reclaimed or a failed one retried.
    pub claim_idle: Duration,
    /// Deliveries before an entry goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// Longest blocking read.
    pub block: Duration,
    /// Entries per read.
    pub batch: usize,
    /// Length the dead-letter stream is trimmed to.
    pub dead_letter_max_len: usize,
    /// Envelope limits checked on publish.
    pub event_limits: EventLimits,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            namespace: DEFAULT_NAMESPACE.to_string(),
            partitions: DEFAULT_PARTITIONS,
            max_len: DEFAULT_MAX_LEN,
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES,
            claim_idle: DEFAULT_CLAIM_IDLE,
            max_deliveries: DEFAULT_MAX_DELIVERIES,
            block: DEFAULT_BLOCK,
            batch: DEFAULT_BATCH,
            dead_letter_max_len: DEFAULT_DEAD_LETTER_MAX_LEN,
            event_limits: EventLimits::default(),
        }
    }
}

impl BrokerConfig {
    /// Checks the settings, naming the first wrong one.
    pub fn validate(&self) -> Result<(), BrokerError> {
        let fail = |msg: &str| Err(BrokerError::Config(msg.to_string()));
        if self.namespace.is_empty() || self.namespace.contains(char::is_whitespace) {
            return fail("namespace must be non-empty and contain no spaces");
        }
        if !(1..=1024).contains(&self.partitions) {
            return fail("partitions must be between 1 and 1024");
        }
        if self.max_deliveries == 0 {
            return fail("max_deliveries must be at least 1");
        }
        if self.batch == 0 || self.max_len == 0 {
            return fail("batch and max_len must be at least 1");
        }
        if self.block.is_zero() || self.block * 2 > self.claim_idle {
            return fail("block must be positive and at most half of claim_idle");
        }
        Ok(())
    }

    /// The partition of events of `workspace` (`None`: platform-wide events).
    pub fn partition_of(&self, workspace: Option<&str>) -> u32 {
        crc32fast::hash(workspace.unwrap_or("").as_bytes()) % self.partitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert!(BrokerConfig::default().validate().is_ok());
        let bad = BrokerConfig {
            partitions: 0,
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("partitions")
        );
        let bad = BrokerConfig {
            block: Duration::from_secs(9),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("claim_idle")
        );
    }

    #[test]
    fn a_workspace_always_maps_to_the_same_partition() {
        let c = BrokerConfig::default();
        let p = c.partition_of(Some("ws-1"));
        assert!(p < c.partitions);
        assert_eq!(p, c.partition_of(Some("ws-1")));
        let spread: std::collections::HashSet<_> = (0..64)
            .map(|i| c.partition_of(Some(&format!("ws-{i}"))))
            .collect();
        assert_eq!(spread.len() as u32, c.partitions);
    }
}
