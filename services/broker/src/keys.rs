//! Every Redis key the broker uses, built in one place.

/// The stream of partition `partition`.
pub fn partition_stream(namespace: &str, partition: u32) -> String {
    format!("{namespace}:events:{partition}")
}

/// The dead-letter stream.
pub fn dead_letter_stream(namespace: &str) -> String {
    format!("{namespace}:deadletter")
}

/// The hash of the last handler error of each failed entry of `group`, read when the entry is
/// dead-lettered.
pub fn failures(namespace: &str, group: &str) -> String {
    format!("{namespace}:failures:{group}")
}
