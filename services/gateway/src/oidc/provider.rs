//! Talking to OpenID providers with the `openidconnect` crate: discovery (cached, refreshed when
//! the provider's keys rotate), the authorization URL with PKCE, the code exchange and the ID
//! token checks (signature through the provider's JWKS, `iss`, `aud`, `exp`, `nonce`, `at_hash`).
//!
//! The crate's HTTP is our pooled reqwest client (redirects off, so a provider cannot bounce us
//! to an internal address), through its [`AsyncHttpClient`] trait: no second reqwest.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse,
};
use refract_core::error::error_chain;
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use super::ProviderConfig;

/// How long discovery metadata (endpoints and keys) is reused before it is fetched again:
/// providers rotate keys rarely and announce new ones ahead; a signature that fails on a
/// cached key set forces a refresh anyway.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// Longest exchange with a provider (discovery, JWKS, token endpoint): a login waits on it.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest provider answer read (metadata, key set, token response are a few KiB).
const MAX_PROVIDER_BODY: usize = 1024 * 1024;

/// The signature algorithms accepted on ID tokens: asymmetric only, so the client secret is
/// never a signing key and `none` never passes.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];

/// Claims copied from the ID token into `authData.<provider>` (the rest are protocol fields).
const PROFILE_CLAIMS: [&str; 9] = [
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "picture",
    "locale",
    "preferred_username",
    "groups",
];

/// Why a login with a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("unknown identity provider {0:?}")]
    Unknown(String),
    #[error("cannot reach the identity provider: {0}")]
    Discovery(String),
    #[error("the identity provider refused the code: {0}")]
    Exchange(String),
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    #[error("invalid setting: {0}")]
    Config(String),
}

/// Who the provider says logged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `sub`: the provider's stable id of the account.
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified`: only a verified email becomes the account's email.
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    /// `{id: sub, <profile claims>}`, stored as `authData.<provider>`.
    pub auth_data: Map<String, Value>,
}

/// What the login start hands to the browser and keeps for the callback.
#[derive(Debug)]
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The configured providers and their cached discovery metadata.
pub struct Providers {
    http: HttpClient,
    by_name: HashMap<String, Provider>,
}

struct Provider {
    config: ProviderConfig,
    issuer: IssuerUrl,
    metadata: RwLock<Option<(Instant, Arc<CoreProviderMetadata>)>>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Providers {
    /// The providers of `configs` (already validated), talking through `http`.
    pub fn new(configs: &[ProviderConfig], http: reqwest::Client) -> Result<Self, ProviderError> {
        let mut by_name = HashMap::new();
        for config in configs {
            let issuer = IssuerUrl::new(config.issuer.clone())
                .map_err(|e| ProviderError::Config(format!("issuer {}: {e}", config.issuer)))?;
            by_name.insert(
                config.name.clone(),
                Provider {
                    config: config.clone(),
                    issuer,
                    metadata: RwLock::new(None),
                },
            );
        }
        Ok(Self {
            http: HttpClient(http),
            by_name,
        })
    }

    /// The settings of provider `name`.
    pub fn config(&self, name: &str) -> Option<&ProviderConfig> {
        self.by_name.get(name).map(|p| &p.config)
    }

    fn provider(&self, name: &str) -> Result<&Provider, ProviderError> {
        self.by_name
            .get(name)
            .ok_or_else(|| ProviderError::Unknown(name.to_string()))
    }

    /// The provider's discovery metadata: cached, fetched when older than [`METADATA_TTL`] or
    /// when `refresh` (keys rotated).
    async fn metadata(
        &self,
        provider: &Provider,
        refresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, ProviderError> {
        if !refresh
            && let Some((at, meta)) = provider.metadata.read().await.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(meta.clone());
        }
        let meta = CoreProviderMetadata::discover_async(provider.issuer.clone(), &self.http)
            .await
            .map_err(|e| ProviderError::Discovery(error_chain(&e)))?;
        let meta = Arc::new(meta);
        *provider.metadata.write().await = Some((Instant::now(), meta.clone()));
        Ok(meta)
    }

    /// The authorization URL of provider `name` for a code flow with PKCE (S256), a fresh
    /// `state` and `nonce`, returning to `redirect_uri`.
    pub async fn authorize(
        &self,
        name: &str,
        redirect_uri: &str,
    ) -> Result<Authorization, ProviderError> {
        let provider = self.provider(name)?;
        let meta = self.metadata(provider, false).await?;
        let client = client(provider, &meta, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &provider.config.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, state, nonce) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges `code` at provider `name`'s token endpoint (with the PKCE verifier) and checks
    /// the ID token it returns.
    pub async fn finish(
        &self,
        name: &str,
        code: String,
        pkce_verifier: String,
        nonce: &str,
        redirect_uri: &str,
    ) -> Result<Identity, ProviderError> {
        let provider = self.provider(name)?;
        let meta = self.metadata(provider, false).await?;
        let client = client(provider, &meta, redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| ProviderError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Exchange(error_chain(&e)))?;
        let id_token = response.id_token().ok_or(ProviderError::NoIdToken)?;
        let nonce = Nonce::new(nonce.to_string());
        let check = |jwks: &CoreJsonWebKeySet| {
            let verifier = verifier(&provider.config.client_id, &provider.issuer, jwks.clone());
            verify_id_token(id_token, &verifier, &nonce, Some(response.access_token()))
        };
        match check(meta.jwks()) {
            // An unknown or rotated key: fetch the key set again, once.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.metadata(provider, true).await?;
                check(fresh.jwks())
            }
            other => other,
        }
        .map_err(|e| ProviderError::InvalidIdToken(e.to_string()))
    }
}

/// A client as discovered: authorization endpoint set, token and user-info endpoints maybe.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A client of `provider` at its discovered endpoints, returning to `redirect_uri`.
fn client(
    provider: &Provider,
    meta: &CoreProviderMetadata,
    redirect_uri: &str,
) -> Result<DiscoveredClient, ProviderError> {
    let secret = provider.config.client_secret.as_ref();
    Ok(CoreClient::from_provider_metadata(
        meta.clone(),
        ClientId::new(provider.config.client_id.clone()),
        secret.map(|s| ClientSecret::new(s.expose().to_string())),
    )
    .set_redirect_uri(redirect(redirect_uri)?))
}

fn redirect(uri: &str) -> Result<RedirectUrl, ProviderError> {
    RedirectUrl::new(uri.to_string()).map_err(|e| ProviderError::Config(format!("{uri}: {e}")))
}

/// The ID token checks of a client `client_id` of `issuer` whose keys are `jwks`: signature
/// with an asymmetric algorithm, issuer, audience, expiry.
pub fn verifier(
    client_id: &str,
    issuer: &IssuerUrl,
    jwks: CoreJsonWebKeySet,
) -> CoreIdTokenVerifier<'static> {
    CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_string()),
        issuer.clone(),
        jwks,
    )
    .set_allowed_algs(ALLOWED_ALGS)
}

/// Checks `id_token` (signature, `iss`, `aud`, `exp`, `nonce`, and `at_hash` when the token
/// carries one) and reads the identity out of it.
pub fn verify_id_token(
    id_token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier<'_>,
    nonce: &Nonce,
    access_token: Option<&openidconnect::AccessToken>,
) -> Result<Identity, ClaimsVerificationError> {
    let claims = id_token.claims(verifier, nonce)?;
    if let (Some(expected), Some(access_token)) = (claims.access_token_hash(), access_token) {
        let alg = id_token
            .signing_alg()
            .map_err(ClaimsVerificationError::SignatureVerification)?;
        let key = id_token
            .signing_key(verifier)
            .map_err(ClaimsVerificationError::SignatureVerification)?;
        let actual = AccessTokenHash::from_token(access_token, alg, key)
            .map_err(|e| ClaimsVerificationError::Other(format!("at_hash: {e}")))?;
        if actual != *expected {
            return Err(ClaimsVerificationError::Other(
                "the access token does not match at_hash".into(),
            ));
        }
    }
    let all = serde_json::to_value(claims)
        .map_err(|e| ClaimsVerificationError::Other(format!("unreadable claims: {e}")))?;
    let text = |name: &str| all.get(name).and_then(Value::as_str).map(str::to_string);
    let subject = claims.subject().as_str().to_string();
    let mut auth_data = Map::new();
    auth_data.insert("id".into(), Value::String(subject.clone()));
    for name in PROFILE_CLAIMS {
        if let Some(value) = all.get(name).filter(|v| !v.is_null()) {
            auth_data.insert(name.into(), value.clone());
        }
    }
    Ok(Identity {
        subject,
        email: text("email"),
        email_verified: claims.email_verified() == Some(true),
        given_name: text("given_name"),
        family_name: text("family_name"),
        picture: text("picture"),
        locale: text("locale"),
        auth_data,
    })
}

/// The crate's HTTP client: our reqwest client, with a timeout and a body cap.
#[derive(Clone)]
struct HttpClient(reqwest::Client);

#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error("the provider's answer is larger than {MAX_PROVIDER_BODY} bytes")]
    TooLarge,
    #[error(transparent)]
    Http(#[from] openidconnect::http::Error),
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut response = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .timeout(PROVIDER_TIMEOUT)
                .send()
                .await?;
            let mut out = openidconnect::http::Response::builder().status(response.status());
            if let Some(headers) = out.headers_mut() {
                *headers = response.headers().clone();
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_PROVIDER_BODY {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(out.body(body)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration as Span, Utc};
    use openidconnect::core::{CoreIdTokenClaims, CoreRsaPrivateSigningKey};
    use openidconnect::{
        Audience, EmptyAdditionalClaims, EndUserEmail, JsonWebKeyId, PrivateSigningKey,
        StandardClaims, SubjectIdentifier,
    };

    /// Two RSA keys made for these tests only (`openssl genrsa 2048`): the provider's, and a
    /// forger's that the provider's key set does not hold.
    const PROVIDER_KEY: &str = include_str!("testdata/provider-key.pem");
    const FORGER_KEY: &str = include_str!("testdata/forger-key.pem");
    const ISSUER: &str = "https://idp.example.org";
    const CLIENT: &str = "refract";

    fn key(pem: &str) -> CoreRsaPrivateSigningKey {
        CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new("k1".into()))).unwrap()
    }

    fn token(
        signer: &CoreRsaPrivateSigningKey,
        issuer: &str,
        audience: &str,
        expires_in: Span,
        nonce: &str,
    ) -> CoreIdToken {
        let claims = CoreIdTokenClaims::new(
            IssuerUrl::new(issuer.into()).unwrap(),
            vec![Audience::new(audience.into())],
            Utc::now() + expires_in,
            Utc::now() - Span::seconds(5),
            StandardClaims::new(SubjectIdentifier::new("sub-42".into()))
                .set_email(Some(EndUserEmail::new("ada@example.org".into())))
                .set_email_verified(Some(true)),
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new(nonce.into())));
        CoreIdToken::new(
            claims,
            signer,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .unwrap()
    }

    fn provider_verifier() -> CoreIdTokenVerifier<'static> {
        let jwks = CoreJsonWebKeySet::new(vec![key(PROVIDER_KEY).as_verification_key()]);
        verifier(CLIENT, &IssuerUrl::new(ISSUER.into()).unwrap(), jwks)
    }

    fn check(token: &CoreIdToken, nonce: &str) -> Result<Identity, ClaimsVerificationError> {
        verify_id_token(token, &provider_verifier(), &Nonce::new(nonce.into()), None)
    }

    #[test]
    fn a_token_signed_by_the_provider_gives_the_identity() {
        let t = token(&key(PROVIDER_KEY), ISSUER, CLIENT, Span::minutes(5), "n1");
        let identity = check(&t, "n1").unwrap();
        assert_eq!(identity.subject, "sub-42");
        assert_eq!(identity.email.as_deref(), Some("ada@example.org"));
        assert!(identity.email_verified);
        assert_eq!(identity.auth_data["id"], "sub-42");
        assert_eq!(identity.auth_data["email"], "ada@example.org");
    }

    #[test]
    fn a_forged_signature_is_refused() {
        let t = token(&key(FORGER_KEY), ISSUER, CLIENT, Span::minutes(5), "n1");
        assert!(matches!(
            check(&t, "n1"),
            Err(ClaimsVerificationError::SignatureVerification(_))
        ));
        // The same claims with the signature part replaced by garbage.
        let good = token(&key(PROVIDER_KEY), ISSUER, CLIENT, Span::minutes(5), "n1");
        let text = serde_json::to_value(&good).unwrap();
        let text = text.as_str().unwrap();
        let (head, _) = text.rsplit_once('.').unwrap();
        let tampered: CoreIdToken = format!("{head}.AAAA").parse().unwrap();
        assert!(check(&tampered, "n1").is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let t = token(&key(PROVIDER_KEY), ISSUER, CLIENT, -Span::minutes(5), "n1");
        assert!(matches!(
            check(&t, "n1"),
            Err(ClaimsVerificationError::Expired(_))
        ));
    }

    #[test]
    fn wrong_issuer_audience_or_nonce_is_refused() {
        let signer = key(PROVIDER_KEY);
        let other_issuer = token(
            &signer,
            "https://evil.example",
            CLIENT,
            Span::minutes(5),
            "n1",
        );
        assert!(matches!(
            check(&other_issuer, "n1"),
            Err(ClaimsVerificationError::InvalidIssuer(_))
        ));
        let other_client = token(&signer, ISSUER, "someone-else", Span::minutes(5), "n1");
        assert!(matches!(
            check(&other_client, "n1"),
            Err(ClaimsVerificationError::InvalidAudience(_))
        ));
        let replayed = token(&signer, ISSUER, CLIENT, Span::minutes(5), "n1");
        assert!(matches!(
            check(&replayed, "n2"),
            Err(ClaimsVerificationError::InvalidNonce(_))
        ));
    }
}
