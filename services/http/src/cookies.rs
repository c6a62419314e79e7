//! The cookies the platform itself sets on its origin, and the check that keeps anything else
//! (a webhook answer written by a tenant) from setting them.
//!
//! A tenant's automation answers on the platform's origin: a `Set-Cookie` for the session cookie
//! would plant a session of the tenant's choosing in the visitor's browser (session fixation),
//! one for the pre-auth cookie would tamper with a login in flight.

/// The session cookie (http-api §1.8), set by the gateway at login.
pub const SESSION: &str = "access-token";

/// The OpenID pre-auth cookie binding a login in flight to the browser that started it.
pub const OIDC_PREAUTH: &str = "refract-oidc";

/// Every cookie name the platform sets.
pub const PLATFORM_COOKIES: &[&str] = &[SESSION, OIDC_PREAUTH];

/// Whether a `Set-Cookie` value must not leave a tenant's answer: it names a platform cookie
/// (as a browser reads it: the name trimmed, compared case-insensitively), or it does not even
/// parse as a cookie (a browser might read it in a way we did not foresee).
pub fn sets_platform_cookie(set_cookie: &str) -> bool {
    match cookie::Cookie::parse(set_cookie) {
        Ok(c) => {
            let name = c.name().trim();
            PLATFORM_COOKIES
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name))
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_cookies_are_caught_however_written() {
        for v in [
            "access-token=x",
            "access-token =X",
            "ACCESS-TOKEN=x",
            " access-token=x; Path=/",
            "\taccess-token\t=x; HttpOnly",
            "Refract-OIDC=abc; Max-Age=600",
            "access-token",
            "=x",
            "",
        ] {
            assert!(sets_platform_cookie(v), "{v:?}");
        }
    }

    #[test]
    fn other_cookies_pass() {
        for v in [
            "theme=dark; Path=/",
            "access-token-2=x",
            "my-access-token=y",
            "__Host-pref=1; Secure; Path=/",
        ] {
            assert!(!sets_platform_cookie(v), "{v:?}");
        }
    }
}
