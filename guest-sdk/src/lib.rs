//! refract-sdk: what automation authors depend on. Filled by the sandbox issue.
