// A real OpenID provider on loopback for the single sign-on tests: the certified `oidc-provider` package (version
// pinned in package.json / package-lock.json next to this file; `.ci/run` installs it into .ci/tools/oidc).
//
//   node tests/oidc/provider.mjs SETUP.json
//
// SETUP.json: {"port": N, "modules": "<…/node_modules>", "clients": [oidc-provider client metadata…],
//              "users_file": "USERS.json"}
// USERS.json: {"<login>": {"password": "…", "claims": {"email": …, "groups": […], …}}}, read again at every sign-in
// (a test changes a user's groups by rewriting it).
// The issuer is http://127.0.0.1:PORT. Signing key: a fresh RSA key per run (RS256). Sign-in: a plain HTML form
// (login + password) checked against `users`; consent is granted at once for the scopes asked (a first-party
// client). The process prints "ready <issuer>" on stdout once it listens.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const setup = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { default: Provider } = await import(pathToFileURL(join(setup.modules, "oidc-provider", "lib", "index.js")).href);
const issuer = `http://127.0.0.1:${setup.port}`;
const users = () => JSON.parse(readFileSync(setup.users_file, "utf8"));

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-key-1", alg: "RS256", use: "sig" };

const provider = new Provider(issuer, {
  clients: setup.clients,
  jwks: { keys: [jwk] },
  cookies: { keys: ["metrosight-test-provider-cookie-key"] },
  scopes: ["openid", "profile", "email", "groups"],
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username", "department"],
    email: ["email", "email_verified"],
    groups: ["groups"],
  },
  conformIdTokenClaims: false, // the scopes' claims go into the ID token (as Keycloak's and ADFS's mappers do)
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const user = users()[id];
    if (!user) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, preferred_username: id, ...user.claims }) };
  },
  ttl: { AuthorizationCode: 120, IdToken: 300, AccessToken: 300, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.on("server_error", (ctx, err) => console.error("server_error", err));

function page(res, status, body) {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8" });
  res.end(`<!doctype html><html><body>${body}</body></html>`);
}

function loginForm(uid, error) {
  return (
    `<h1>Test provider: sign in</h1>${error ? `<p id="error">${error}</p>` : ""}` +
    `<form method="post" action="/interaction/${uid}/login">` +
    `<label>Login <input name="login" autofocus></label>` +
    `<label>Password <input name="password" type="password"></label>` +
    `<button type="submit" id="provider-submit">Sign in</button></form>`
  );
}

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

async function interaction(req, res) {
  const m = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  const details = await provider.interactionDetails(req, res);
  if (m[2] && req.method === "POST") {
    const form = await readForm(req);
    const user = users()[form.get("login")];
    if (!user || user.password !== form.get("password")) {
      return page(res, 200, loginForm(details.uid, "wrong login or password"));
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.get("login") } }, { mergeWithLastSubmission: false });
  }
  if (details.prompt.name === "login") return page(res, 200, loginForm(details.uid, null));
  if (details.prompt.name === "consent") {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(" "));
      }
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 400, `unexpected prompt ${details.prompt.name}`);
}

const handler = provider.callback();
const server = createServer((req, res) => {
  if (req.url.startsWith("/interaction/")) {
    interaction(req, res).catch((err) => {
      console.error(err);
      if (!res.headersSent) page(res, 500, "interaction failed");
    });
    return;
  }
  handler(req, res);
});
server.listen(setup.port, "127.0.0.1", () => console.log(`ready ${issuer}`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
