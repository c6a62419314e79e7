//! The hostile-tenant suite: each test plays an attacker (another tenant, every role, an
//! anonymous session, a client forging the gateway's headers, a backend reached directly, a
//! hostile guest) against the public API or a backend's port, and proves one path closed.
//! A security fix lands with its test here, and the test stays.

mod backends;
mod browser;
mod events;
mod parsing;
mod reads;
mod starvation;
mod web;
