//! refract-sdk-macro. Filled by the sandbox issue.
