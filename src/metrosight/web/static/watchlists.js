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
    } catch (e) { flash(t("create: {error}", { error: e.message }), true); }
  });

  const enrol = document.getElementById("enrol");
  const describe = p => `${p.photo}: ${t(p.status)}${p.reason ? " — " + p.reason : ""}`;

  // A photo refused for several faces: show it with its faces boxed and numbered; a click enrols that face.
  function pickFace(file, photo, submit) {
    const box = document.getElementById("enrol-faces");
    box.replaceChildren();
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = t("Several faces and none clearly the subject's: click the subject's face to enrol it.");
    const wrap = document.createElement("div");
    wrap.className = "face-pick";
    const img = document.createElement("img");
    img.alt = photo.photo;
    const reader = new FileReader();  // a data: URL (the page's content security policy allows no blob: images)
    reader.addEventListener("load", () => { img.src = reader.result; });
    reader.readAsDataURL(file);
    wrap.append(img);
    box.append(note, wrap);
    img.addEventListener("error", () => img.remove());  // a format the browser cannot show: the buttons remain
    img.addEventListener("load", () => {
      const sx = img.clientWidth / img.naturalWidth, sy = img.clientHeight / img.naturalHeight;
      for (const f of photo.faces) {
        const [x1, y1, x2, y2] = f.box;
        const b = document.createElement("button");
        b.type = "button";
        b.className = "face-box" + (f.problem ? " face-unusable" : "");
        b.textContent = String(f.number);
        b.title = f.problem ? t("face {number}: {problem}", { number: f.number, problem: f.problem })
          : t("enrol face {number}", { number: f.number });
        Object.assign(b.style, { left: `${x1 * sx}px`, top: `${y1 * sy}px`,
                                 width: `${(x2 - x1) * sx}px`, height: `${(y2 - y1) * sy}px` });
        b.addEventListener("click", () => { box.replaceChildren(); submit(f.number); });
        wrap.append(b);
      }
    });
    const list = document.createElement("ul");  // the same choice as a list (also when the photo cannot be shown)
    for (const f of photo.faces) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = t("face {number}", { number: f.number });
      b.addEventListener("click", () => { box.replaceChildren(); submit(f.number); });
      li.append(b, ` ${f.problem || ""}`);
      list.append(li);
    }
    box.append(list);
  }

  async function send(face) {
    const f = new FormData(enrol);
    const wl = f.get("watchlist");
    f.delete("watchlist");
    for (const k of [...f.keys()]) if (f.get(k) === "") f.delete(k);
    if (face) f.set("face", String(face));
    const files = f.getAll("photos");
    const out = document.getElementById("enrol-result");
    out.textContent = t("enrolling…");
    try {
      const r = await api("POST", `/api/watchlists/${encodeURIComponent(wl)}/entries`, f);
      // the warnings (which face of a photo with several was taken, look-alike persons) stay on the page to be read
      const warned = (r.warnings || []).map(w => t("warning: {warning}", { warning: w }));
      out.textContent = r.photos.map(describe).join("\n") + "\n"
        + t("entry {name}: {status}", { name: r.subject, status: t(r.entry_status) })
        + warned.map(w => "\n" + w).join("");
      if (!warned.length) setTimeout(() => location.reload(), 1500);
    } catch (e) {
      const photos = e.data && e.data.photos;
      out.textContent = photos ? photos.map(describe).join("\n") : t("refused: {error}", { error: e.message });
      if (photos && photos.length === 1 && photos[0].faces && files.length === 1) pickFace(files[0], photos[0], send);
    }
  }
  if (enrol) enrol.addEventListener("submit", ev => { ev.preventDefault(); send(null); });

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
        const reason = window.prompt(t("Why revoke {entry}? (audited; its templates are destroyed)", { entry: tr.dataset.entry }));
        if (!reason) return;
        await api("POST", `${base}/revoke`, { reason });
      }
      location.reload();
    } catch (e) { flash(`${tr.dataset.entry}: ${e.message}`, true); }
  });
})();
