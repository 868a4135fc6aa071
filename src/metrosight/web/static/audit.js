// Audit log: the verify button.
"use strict";
document.getElementById("verify").addEventListener("click", async () => {
  const out = document.getElementById("verify-result");
  out.textContent = "checking…";
  try {
    const r = await api("POST", "/api/audit/verify");
    out.textContent = r.ok ? `OK: ${r.checked} entries, chain intact` : `BROKEN at entry ${r.broken_seq}: ${r.reason}`;
    out.className = r.ok ? "state-live" : "error";
  } catch (e) { out.textContent = e.message; out.className = "error"; }
});
