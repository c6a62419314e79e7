//! Backends reached directly, forged identity headers, accounts and rate limits (gateway).
