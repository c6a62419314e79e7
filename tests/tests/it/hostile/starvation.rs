//! One workspace's load must not starve another's: pool slots, memory, concurrency, throttles.
