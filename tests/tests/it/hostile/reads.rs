//! Read rules: WebSocket delivery, history, search counts, long-poll, re-checks when access changes.
