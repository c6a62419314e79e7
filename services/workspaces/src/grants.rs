//! Component grants. An export names each component automation's component by digest: the
//! bytes stay in the platform's content-addressed blob store. A digest alone must not get
//! anyone a runnable copy of another tenant's component (digests are not secrets: events and
//! automation documents carry them, and the code may embed what its owner would not share). So
//! the export also carries a grant, the digest sealed under the platform keyring (AES-256-GCM,
//! bound to this purpose), which only this platform makes, and only for an owner exporting a
//! workspace that runs that component. An import takes a component automation only with a
//! grant that opens to its digest; a grant from another platform, or edited, does not open.

use refract_http::ApiError;
use refract_secrets::{Keyring, Sealed};
use serde_json::Value;

/// What a grant's seal is bound to: a sealed secret value does not open as a grant.
const PURPOSE: &[u8] = b"refract-component-grant";

/// The grant for `digest`, as the export writes it (`{key, nonce, data}`).
pub fn issue(keyring: &Keyring, digest: &str) -> Result<Value, ApiError> {
    let sealed = keyring
        .seal(PURPOSE, digest.as_bytes())
        .map_err(ApiError::internal)?;
    serde_json::to_value(sealed).map_err(ApiError::internal)
}

/// The digest `grant` was issued for; 403 when it is not a grant of this platform's keyring.
pub fn redeem(keyring: &Keyring, grant: &Value) -> Result<String, ApiError> {
    let refused = || {
        ApiError::forbidden(
            "the component's grant does not open: components import only from an export of \
             this platform, unchanged",
        )
    };
    let sealed: Sealed = serde_json::from_value(grant.clone()).map_err(|_| refused())?;
    let digest = keyring.open(PURPOSE, &sealed).map_err(|_| refused())?;
    String::from_utf8(digest).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_opens_to_its_digest_only_under_the_keyring_that_issued_it() {
        let keyring = Keyring::ephemeral();
        let grant = issue(&keyring, "sha256:abc").unwrap();
        assert_eq!(redeem(&keyring, &grant).unwrap(), "sha256:abc");
        assert_eq!(
            redeem(&Keyring::ephemeral(), &grant).unwrap_err().status,
            403
        );
        let mut edited = grant.clone();
        edited["data"] = Value::String("AAAA".repeat(12));
        assert_eq!(redeem(&keyring, &edited).unwrap_err().status, 403);
        assert_eq!(
            redeem(&keyring, &serde_json::json!("sha256:abc"))
                .unwrap_err()
                .status,
            403
        );
    }
}
