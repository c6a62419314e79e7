//! End-to-end test helpers. Filled by the platform issue.
