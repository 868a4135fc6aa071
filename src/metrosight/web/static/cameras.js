// Cameras: refresh the table from /api/cameras every two seconds.
"use strict";
(function () {
  const fmt = v => (v === null || v === undefined ? "—" : num(v, 1));
  async function refresh() {
    try {
      const cams = await api("GET", "/api/cameras");
      for (const c of cams) {
        const tr = document.querySelector(`#cameras tr[data-id="${CSS.escape(c.id)}"]`);
        if (!tr) continue;
        const st = tr.querySelector(".state");
        st.textContent = t(c.state); st.className = `state state-${c.state}`; st.title = c.reason || "";
        tr.querySelector(".fps").textContent = fmt(c.fps);
        tr.querySelector(".faces_per_s").textContent = fmt(c.faces_per_s);
        tr.querySelector(".last_frame").textContent = when(c.last_frame);
        for (const k of ["frames", "faces", "alerts"]) tr.querySelector(`.${k}`).textContent = c[k];
        const snap = tr.querySelector(".snap");
        if (c.has_snapshot) {
          let img = snap.querySelector("img");
          if (!img) { snap.textContent = ""; img = document.createElement("img"); img.alt = t("redacted snapshot of {camera}", { camera: c.id }); snap.append(img); }
          img.src = `/api/cameras/${encodeURIComponent(c.id)}/snapshot?t=${Date.now()}`;
        }
      }
    } catch (e) { flash(t("cameras: {error}", { error: e.message }), true); }
  }
  setInterval(refresh, 2000);
})();
