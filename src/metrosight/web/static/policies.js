// Alert policies on the Watchlists page: each row's colour swatch, and the admin's form (PUT through the JSON API).
"use strict";
(function () {
  document.querySelectorAll("#policies tr[data-colour]").forEach(tr => {
    const sw = tr.querySelector(".swatch");
    if (sw) sw.style.backgroundColor = tr.dataset.colour;  // a validated #rrggbb
  });
  const form = document.getElementById("policy");
  if (!form) return;
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(form);
    const after = f.get("escalate_after_s");
    const body = {
      priority: f.get("priority"),
      colour: f.get("colour") || null,
      ack_required: f.get("ack_required") === "true",
      groups: String(f.get("groups") || "").split(",").map(g => g.trim()).filter(Boolean),
      escalate_after_s: after ? parseInt(after, 10) : null,
      escalate_to: f.get("escalate_to") || null,
    };
    try {
      await api("PUT", `/api/watchlists/${encodeURIComponent(f.get("watchlist"))}/policy`, body);
      location.reload();
    } catch (e) { flash(t("policy: {error}", { error: e.message }), true); }
  });
})();
