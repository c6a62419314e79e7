//! Refract runtime service. Filled by a later issue; empty until then.
