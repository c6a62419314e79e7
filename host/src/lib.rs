//! refract-host: the wasmtime embedding. Filled by the sandbox issue.
