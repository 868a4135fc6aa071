// Users (admin): add a user, disable or enable one, set the scope of a user's role.
"use strict";
(function () {
  const GLOBAL_ROLES = ["admin", "auditor"];
  const items = text => (text || "").split("\n").map(s => s.trim()).filter(Boolean);
  const form = document.getElementById("add-user");
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { name: f.get("name"), roles: f.getAll("roles") };
    if (f.get("password")) body.password = f.get("password");
    const scope = items(f.get("scope"));
    if (scope.length) {
      body.scopes = {};
      for (const r of body.roles) if (!GLOBAL_ROLES.includes(r)) body.scopes[r] = scope;
    }
    try { await api("POST", "/api/users", body); location.reload(); } catch (e) { flash(t("add user: {error}", { error: e.message }), true); }
  });
  document.getElementById("users").addEventListener("click", async ev => {
    const b = ev.target.closest("button.toggle");
    if (!b) return;
    const name = b.closest("tr").dataset.user;
    try {
      await api("PATCH", `/api/users/${encodeURIComponent(name)}`, { disabled: b.dataset.disabled !== "1" });
      location.reload();
    } catch (e) { flash(`${name}: ${e.message}`, true); }
  });
  const scopeForm = document.getElementById("set-scope");
  scopeForm.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(scopeForm);
    const name = f.get("user"), role = f.get("role");
    const row = [...document.querySelectorAll("#users tr[data-user]")].find(tr => tr.dataset.user === name);
    const scopes = Object.assign({}, JSON.parse(row ? row.dataset.scopes : "{}"));
    const scope = items(f.get("scope"));
    if (scope.length) scopes[role] = scope; else delete scopes[role];
    try {
      await api("PATCH", `/api/users/${encodeURIComponent(name)}`, { scopes });
      location.reload();
    } catch (e) { flash(`${name}: ${e.message}`, true); }
  });
})();
