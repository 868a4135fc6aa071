// Watchlists: create, enrol photos, approve, revoke (all through the JSON API).
"use strict";
(function () {
  const create = document.getElementById("create-watchlist");
  if (create) create.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(create);
    try {
      await api("POST", "/api/watchlists", { name: f.get("name"), category: f.get("category") });
      location.reload();
    } catch (e) { flash(`create: ${e.message}`, true); }
  });

  const enrol = document.getElementById("enrol");
  if (enrol) enrol.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(enrol);
    const wl = f.get("watchlist");
    f.delete("watchlist");
    for (const k of [...f.keys()]) if (f.get(k) === "") f.delete(k);
    const out = document.getElementById("enrol-result");
    out.textContent = "enrolling…";
    try {
      const r = await api("POST", `/api/watchlists/${encodeURIComponent(wl)}/entries`, f);
      out.textContent = r.photos.map(p => `${p.photo}: ${p.status}${p.reason ? " — " + p.reason : ""}`).join("\n") +
        `\nentry ${r.subject}: ${r.entry_status}`;
      setTimeout(() => location.reload(), 1500);
    } catch (e) {
      out.textContent = e.data && e.data.photos
        ? e.data.photos.map(p => `${p.photo}: ${p.status}${p.reason ? " — " + p.reason : ""}`).join("\n")
        : `refused: ${e.message}`;
    }
  });

  const table = document.getElementById("entries");
  if (table) table.addEventListener("click", async ev => {
    const b = ev.target.closest("button");
    if (!b) return;
    const tr = b.closest("tr");
    const base = `/api/watchlists/${encodeURIComponent(tr.dataset.watchlist)}/entries/${encodeURIComponent(tr.dataset.entry)}`;
    try {
      if (b.classList.contains("approve")) {
        await api("POST", `${base}/approve`);
      } else {
        const reason = window.prompt(`Why revoke ${tr.dataset.entry}? (audited; its templates are destroyed)`);
        if (!reason) return;
        await api("POST", `${base}/revoke`, { reason });
      }
      location.reload();
    } catch (e) { flash(`${tr.dataset.entry}: ${e.message}`, true); }
  });
})();
