//! Webhook answers in a browser: script on the platform's origin, cookies, cross-site requests.
