// Users (admin): add a user, disable or enable one.
"use strict";
(function () {
  const form = document.getElementById("add-user");
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = { name: f.get("name"), roles: f.getAll("roles") };
    if (f.get("password")) body.password = f.get("password");
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
})();
