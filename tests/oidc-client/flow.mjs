// An independent relying party against a running Gotthard: openid-client (panva's certified
// OpenID Connect client, pinned in package.json) discovers the issuer, sends the user to the
// authorization endpoint with PKCE S256, state and nonce, and, once this script has filled in
// the login form over plain HTTP like a browser would, exchanges the code, checks the ID token,
// refreshes (the refresh token must rotate), calls userinfo, and checks that the rotated-out
// refresh token is refused. One line per step; exit status 1 on the first failure.
//
//   ISSUER=http://127.0.0.1:8080 CLIENT_ID=… CLIENT_SECRET=… USER_EMAIL=… USER_PASSWORD=… \
//     node flow.mjs
//
// The client is confidential (client_secret_basic) and first-party (no consent page); should a
// consent page come anyway, it is accepted and said so. REDIRECT_URI defaults to
// http://127.0.0.1:8080/callback: nothing needs to listen there, the code is read from the
// Location header. scripts/oidc-client-test sets all of this up.

import { readFileSync } from 'node:fs';

import * as client from 'openid-client';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`set ${name}`);
    process.exit(2);
  }
  return value;
};
const ISSUER = env('ISSUER');
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const REDIRECT_URI = env('REDIRECT_URI', 'http://127.0.0.1:8080/callback');
const USER_EMAIL = env('USER_EMAIL');
const USER_PASSWORD = env('USER_PASSWORD');
const SCOPE = 'openid profile email offline_access';

let stepNo = 0;
async function step(label, fn) {
  stepNo += 1;
  try {
    const result = await fn();
    const note = typeof result === 'string' ? `  (${result})` : '';
    console.log(`ok   ${String(stepNo).padStart(2)} ${label}${note}`);
    return result;
  } catch (err) {
    const cause = err?.cause ? ` [cause: ${err.cause?.message ?? JSON.stringify(err.cause)}]` : '';
    const body = err?.error ? ` [${err.error}${err.error_description ? `: ${err.error_description}` : ''}]` : '';
    console.log(`FAIL ${String(stepNo).padStart(2)} ${label}: ${err?.message ?? err}${body}${cause}`);
    process.exit(1);
  }
}
function check(condition, message) {
  if (!condition) throw new Error(message);
}

// ---------------------------------------------------------------------------------------------
// The browser's part: fetch with manual redirects and a cookie jar (by name; Gotthard's cookies
// are all path=/ on one host).

const jar = new Map();
async function browse(url, { method = 'GET', form } = {}) {
  const headers = {};
  if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let body;
  if (form) {
    body = new URLSearchParams(form).toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const response = await fetch(url, { method, headers, body, redirect: 'manual' });
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const gone = value === '' || attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
    if (gone) jar.delete(name);
    else jar.set(name, value);
  }
  const location = response.headers.get('location');
  return {
    status: response.status,
    text: await response.text(),
    location: location ? new URL(location, url) : undefined,
  };
}

const decode = (s) => s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e) => {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[e.toLowerCase()];
  if (named) return named;
  return String.fromCodePoint(e[1].toLowerCase() === 'x' ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10));
});
// The value of the named <input> in an HTML page (attributes in any order).
function field(html, name) {
  for (const [tag] of html.matchAll(/<input\b[^>]*>/gi)) {
    const attrs = Object.fromEntries([...tag.matchAll(/([\w-]+)\s*=\s*("([^"]*)"|'([^']*)')/g)]
      .map((m) => [m[1].toLowerCase(), decode(m[3] ?? m[4])]));
    if (attrs.name === name) return attrs.value ?? '';
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

const version = JSON.parse(readFileSync(new URL('./node_modules/openid-client/package.json', import.meta.url))).version;
console.log(`issuer: ${ISSUER}  client: ${CLIENT_ID}  openid-client ${version}`);

const config = await step('discovery (/.well-known/openid-configuration)', async () => {
  const c = await client.discovery(new URL(ISSUER), CLIENT_ID, { client_secret: CLIENT_SECRET }, client.ClientSecretBasic(CLIENT_SECRET), {
    // Loopback test server over http; the ID token signature is also checked against the JWKS.
    execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
  });
  const m = c.serverMetadata();
  check(m.issuer === ISSUER, `issuer ${m.issuer}`);
  check(m.code_challenge_methods_supported?.includes('S256'), 'S256 not offered');
  return c;
});
console.log(`     (authorization ${config.serverMetadata().authorization_endpoint}, token ${config.serverMetadata().token_endpoint})`);

const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const state = client.randomState();
const nonce = client.randomNonce();
const authorizationUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: REDIRECT_URI,
  scope: SCOPE,
  code_challenge: challenge,
  code_challenge_method: 'S256',
  state,
  nonce,
});

const loginPage = await step('GET authorization URL without a session -> login form', async () => {
  const r = await browse(authorizationUrl);
  check(r.status === 302 || r.status === 303, `status ${r.status}: ${r.text.slice(0, 200)}`);
  check(r.location?.pathname === '/login', `redirected to ${r.location}`);
  const page = await browse(r.location);
  check(page.status === 200, `login form status ${page.status}`);
  const csrf = field(page.text, 'csrf');
  const next = field(page.text, 'next');
  check(csrf && next, 'no csrf or next field in the login form');
  return { csrf, next, url: r.location };
});

const callback = await step('POST /login, then follow to the redirect URI', async () => {
  let r = await browse(new URL('/login', ISSUER), {
    method: 'POST',
    form: { email: USER_EMAIL, password: USER_PASSWORD, csrf: loginPage.csrf, next: loginPage.next },
  });
  check(r.status === 303 && r.location, `POST /login status ${r.status}: ${r.text.slice(0, 200)}`);
  check(jar.has('gotthard_session') || [...jar.keys()].some((k) => k.endsWith('gotthard_session')), 'no session cookie');
  let consent = false;
  for (let hops = 0; hops < 5; hops += 1) {
    if (r.location && r.location.href.startsWith(REDIRECT_URI)) break;
    if (r.location) {
      r = await browse(r.location);
    } else if (r.status === 200 && field(r.text, 'request') !== undefined) {
      consent = true;
      r = await browse(new URL('/oauth2/consent', ISSUER), {
        method: 'POST',
        form: { csrf: field(r.text, 'csrf'), request: field(r.text, 'request'), decision: 'allow' },
      });
    } else {
      throw new Error(`stuck at status ${r.status}: ${r.text.slice(0, 200)}`);
    }
  }
  check(r.location?.href.startsWith(REDIRECT_URI), `never reached the redirect URI (last: ${r.status} ${r.location ?? ''})`);
  check(r.location.searchParams.get('code'), `no code: ${r.location.search}`);
  return { url: r.location, consent };
});
if (callback.consent) console.log('     (a consent page was shown to a first-party client and accepted)');

const tokens = await step('authorizationCodeGrant (code + PKCE verifier, state, nonce)', async () => {
  const t = await client.authorizationCodeGrant(config, callback.url, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  check(t.access_token && t.refresh_token && t.id_token, 'missing access, refresh or ID token');
  check(t.token_type?.toLowerCase() === 'bearer', `token_type ${t.token_type}`);
  return t;
});

const claims = await step('ID token claims (iss, aud, sub, nonce)', async () => {
  const c = tokens.claims();
  check(c, 'no ID token claims');
  check(c.iss === ISSUER, `iss ${c.iss}`);
  check([].concat(c.aud).includes(CLIENT_ID), `aud ${c.aud}`);
  check(typeof c.sub === 'string' && c.sub.length > 0, 'no sub');
  check(c.sub !== USER_EMAIL, 'sub is the e-mail address');
  check(c.nonce === nonce, `nonce ${c.nonce}`);
  return c;
});
console.log(`     (sub ${claims.sub}; claims: ${Object.keys(claims).join(' ')})`);

const refreshed = await step('refreshTokenGrant (the refresh token rotates)', async () => {
  const r = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(r.access_token, 'no access token');
  check(r.refresh_token && r.refresh_token !== tokens.refresh_token, 'refresh token not rotated');
  if (r.id_token) check(r.claims()?.sub === claims.sub, 'refreshed ID token for another sub');
  return r;
});

await step('fetchUserInfo with the refreshed access token (sub matches)', async () => {
  const info = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  check(info.sub === claims.sub, `sub ${info.sub}`);
  check(info.email === USER_EMAIL, `email ${info.email}`);
  return `email ${info.email}`;
});

await step('refreshTokenGrant with the rotated-out token is refused (invalid_grant)', async () => {
  try {
    await client.refreshTokenGrant(config, tokens.refresh_token);
  } catch (err) {
    check(err instanceof client.ResponseBodyError && err.error === 'invalid_grant', `refused with ${err.error ?? err.message}`);
    return 'invalid_grant';
  }
  throw new Error('the old refresh token still worked');
});

console.log(`all ${stepNo} steps passed`);
