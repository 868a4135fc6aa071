// Audit log: the verify button.
"use strict";
document.getElementById("verify").addEventListener("click", async () => {
  const out = document.getElementById("verify-result");
  out.textContent = t("checking…");
  try {
    const r = await api("POST", "/api/audit/verify");
    out.textContent = r.ok ? tn("OK: {n} entry, chain intact", "OK: {n} entries, chain intact", r.checked)
      : t("BROKEN at entry {seq}: {reason}", { seq: r.broken_seq, reason: r.reason });
    out.className = r.ok ? "state-live" : "error";
  } catch (e) { out.textContent = e.message; out.className = "error"; }
});
