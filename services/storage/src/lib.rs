//! refract-storage. Filled by the storage issue.
