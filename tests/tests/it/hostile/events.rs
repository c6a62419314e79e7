//! Platform events a tenant must not forge (guest and client emits) and the consumers that must ignore forgeries.
