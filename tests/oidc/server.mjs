// A real OpenID Provider (panva/oidc-provider, OpenID Certified) on loopback, for Refract's
// end-to-end OIDC login tests (tests/tests/it/oidc.rs).
//
//   node server.mjs <port> <redirect_uri>
//
// One confidential client `refract` / `refract-test-secret` whose only redirect URI is
// <redirect_uri>, PKCE (S256) required, one test account `ada`. Logins go through the
// provider's built-in development interactions (a login form, then a consent form), which
// the test submits without a browser. Prints `listening <issuer>` once it accepts requests.

import Provider from 'oidc-provider';

const [port, redirectUri] = process.argv.slice(2);
if (!port || !redirectUri) {
  console.error('usage: node server.mjs <port> <redirect_uri>');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

// The test account. devInteractions accept any password; an unknown login has no account.
const accounts = {
  ada: {
    email: 'ada@oidc.test',
    email_verified: true,
    given_name: 'Ada',
    family_name: 'Lovelace',
    locale: 'en',
  },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'refract',
      client_secret: 'refract-test-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name', 'locale'],
  },
  // Put the scopes' claims in the ID token itself, as most providers do for the code flow.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['refract-oidc-test-cookie-key'] },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...account }) };
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
