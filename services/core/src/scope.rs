//! Where a context variable lives: the one scope vocabulary shared by the state import (the
//! WIT `scope`), the DSL's `{{global.x}}`/`{{user.x}}`/… paths and the context store's keys.

/// A context variable's scope (automation-dsl §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Shared by every run of the workspace; survives restarts.
    Global,
    /// The run's user's variables; survives restarts. Absent when the run has no user.
    User,
    /// The run's login session's variables; expire with it. Absent without a session.
    Session,
    /// One run's variables, shared with the automations it calls.
    Run,
    /// One WebSocket connection's variables (the socket the triggering event came from; else
    /// the session, else the user); expire hours after the last write.
    Socket,
}

impl Scope {
    /// The scope's name, as DSL paths and context keys spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::User => "user",
            Scope::Session => "session",
            Scope::Run => "run",
            Scope::Socket => "socket",
        }
    }

    /// The scope named `name` (`global`, `user`, `session`, `run`, `socket`).
    pub fn parse(name: &str) -> Option<Scope> {
        Some(match name {
            "global" => Scope::Global,
            "user" => Scope::User,
            "session" => Scope::Session,
            "run" => Scope::Run,
            "socket" => Scope::Socket,
            _ => return None,
        })
    }

    /// Whether its variables outlive a restart of the platform (global and user contexts).
    pub const fn is_persistent(self) -> bool {
        matches!(self, Scope::Global | Scope::User)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for s in [
            Scope::Global,
            Scope::User,
            Scope::Session,
            Scope::Run,
            Scope::Socket,
        ] {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("sockets"), None);
        assert_eq!(Scope::parse("Global"), None);
    }
}
