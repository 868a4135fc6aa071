// Live alerts: Server-Sent Events from /api/alerts/stream, and the two-person review buttons.
"use strict";
(function () {
  const box = document.getElementById("alerts");
  const badge = document.getElementById("live");
  const canReview = box.dataset.review === "1";
  const canCrops = box.dataset.crops === "1";
  const canHandle = box.dataset.handle === "1";
  const me = box.dataset.me || "";
  const roles = (box.dataset.roles || "").split(",");
  // the server's clock minus ours (seconds): countdowns follow the server's escalation times
  const skew = parseFloat(box.dataset.now || "0") ? parseFloat(box.dataset.now) - Date.now() / 1000 : 0;
  let after = parseInt(box.dataset.after || "0", 10);

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return e;
  }

  function card(a) {
    const crop = el("div", { class: "crop" });
    if (a.has_crop && canCrops) crop.append(el("img", { src: `/api/alerts/${a.id}/crop`, alt: t("redacted best shot of alert {id}", { id: a.id }) }));
    else crop.append(el("span", {}, t("no crop")));
    const lists = (a.watchlists && a.watchlists.length ? a.watchlists : [a.watchlist]).join(", ");
    // "{category} on {lists}": the words around the two values come from the catalogue
    const [before, between, after] = t("{category} on {lists}").split(/\{category\}|\{lists\}/);
    const info = el("div", { class: "info" },
      el("h2", { translate: "no" }, a.subject_name),
      el("p", {}, before || "", el("span", { class: "cat" }, t(a.category)), between || "",
        el("b", { translate: "no" }, lists), after || "",
        a.reference ? ` · ${t("ref.")} ` : "", a.reference ? el("span", { translate: "no" }, a.reference) : ""),
      el("p", {}, `${t("score")} `, el("b", {}, num(a.score, 3)), ` · ${t("camera")} `,
        el("b", { translate: "no" }, (a.cameras && a.cameras.length ? a.cameras : [a.camera_id]).join(", ")),
        ` · ${tn("{n} sighting", "{n} sightings", a.sightings || 1)}`
        + ` · ${t("seen {first}–{last} s", { first: num(a.first_seen, 1), last: num(a.last_seen, 1) })}`
        + ` · ${t("raised")} ${when(a.created_at)}`),
      el("p", {}, `${t("alert #{id}", { id: a.id })} · ${t("status")} `, el("b", { class: "status" }, t(a.status))));
    const art = el("article", { class: `alert status-${a.status} fresh`, "data-id": a.id, "data-shown": Date.now() }, crop, info);
    const actions = el("div", { class: "actions" });
    if (canReview) {
      actions.append(el("button", { class: "confirm", "data-id": a.id }, t("Confirm")),
        el("button", { class: "reject", "data-id": a.id }, t("Reject…")));
    }
    art.append(actions);
    setAlarm(art, a.alarm);
    return art;
  }

  // -- alarms: priority colour, owner, time to escalation, claim / release / take over / acknowledge ------------
  function countdownText(m) {
    const left = Math.max(0, Math.round(m.escalate_at - (Date.now() / 1000 + skew)));
    if (left <= 0) return t("escalating to {role}…", { role: t(m.escalate_to) });
    const mm = Math.floor(left / 60), ss = String(left % 60).padStart(2, "0");
    return t("escalates to {role} in {time}", { role: t(m.escalate_to), time: `${mm}:${ss}` });
  }

  function alarmButtons(art, m) {
    const id = art.dataset.id;
    const span = el("span", { class: "alarm-actions", "data-id": id });
    // operators handle alarms; the escalation role those escalated to it (the server checks again)
    const mayHandle = m && (roles.includes("operator") || (m.escalated && roles.includes(m.escalate_to)));
    if (!canHandle || !mayHandle || m.state === "acknowledged") return span;
    const b = (cls, label) => el("button", { class: cls, "data-id": id }, label);
    if (m.state === "new") span.append(b("claim", t("Claim")), b("acknowledge", t("Acknowledge")));
    else if (m.owner === me) span.append(b("acknowledge", t("Acknowledge")), b("release", t("Release")));
    else span.append(b("takeover", t("Take over…")));
    return span;
  }

  function setAlarm(art, m) {
    const info = art.querySelector(".info");
    const old = art.querySelector("p.alarm");
    if (old) old.remove();
    art.classList.remove("alarm-new", "alarm-claimed", "alarm-acknowledged", "escalated");
    const oldButtons = art.querySelector(".alarm-actions");
    if (oldButtons) oldButtons.remove();
    if (!m) return;
    art.dataset.priority = m.priority;
    art.style.borderLeftColor = m.colour;  // a validated #rrggbb
    art.classList.add(`alarm-${m.state}`);
    if (m.escalated) art.classList.add("escalated");
    const p = el("p", { class: "alarm" }, el("span", { class: "priority" }, tp("alarm", m.priority)), ` ${t("alarm")} · `,
      el("span", { class: "alarm-state" }, tp("alarm", m.state)), " · ",
      el("span", { class: "owner" },
        ...(m.owner ? [`${t("owner")} `, el("b", { translate: "no" }, m.owner)] : [t("unclaimed")])));
    p.alarm = m;
    p.querySelector(".priority").style.backgroundColor = m.colour;
    if (m.escalated) p.append(" · ", el("span", { class: "escalated" }, t("escalated to {role}", { role: t(m.escalate_to) })));
    else if (m.seconds_to_escalation !== null && m.seconds_to_escalation !== undefined && m.state !== "acknowledged") {
      const c = el("span", { class: "countdown", "data-escalate-at": m.escalate_at }, "");
      c.alarm = m;
      c.textContent = countdownText(m);
      p.append(" · ", c);
    }
    info.append(p);
    art.querySelector(".actions").append(alarmButtons(art, m));
  }

  function tick() {
    box.querySelectorAll(".countdown").forEach(c => { if (c.alarm) c.textContent = countdownText(c.alarm); });
  }

  function setStatus(id, status) {
    const art = box.querySelector(`article[data-id="${id}"]`);
    if (!art) return;
    art.className = art.className.replace(/status-\S+/, `status-${status}`);
    art.querySelector(".status").textContent = t(status);
    if (status === "actionable" || status === "rejected") art.querySelectorAll("button.confirm, button.reject").forEach(b => (b.disabled = true));
  }

  // The feed must come back after any failure. The browser retries a dropped connection by itself (after the
  // server's `retry:` delay, sending Last-Event-ID), but gives up for good when an attempt is answered with an error
  // status (a 5xx, a proxy's 502): then the page reconnects itself, with a growing delay (1 s doubling to 30 s, with
  // jitter), from the newest alert it has shown; a signed-out session goes to the sign-in page instead.
  let src = null, timer = null, delay = 1000;

  function lost() { badge.dataset.state = "lost"; badge.textContent = t("reconnecting…"); }

  function later() {
    if (timer) return;
    const wait = delay * (0.5 + Math.random());
    delay = Math.min(delay * 2, 30000);
    timer = setTimeout(async () => {
      timer = null;
      try {
        const r = await fetch("/api/me", { credentials: "same-origin" });
        if (r.status === 401) { window.location.href = "/login"; return; }
      } catch (e) { /* the server is away: try the feed anyway */ }
      connect();
    }, wait);
  }

  function connect() {
    if (src) src.close();
    src = new EventSource(`/api/alerts/stream?after=${after}`);
    const mine = src;
    src.addEventListener("open", () => { delay = 1000; badge.dataset.state = "live"; badge.textContent = t("live"); });
    src.addEventListener("error", () => {
      if (mine !== src) return;
      lost();
      if (mine.readyState === EventSource.CLOSED) later();  // the browser gave up: reconnect ourselves
    });
    src.addEventListener("alert", ev => {
      const a = JSON.parse(ev.data);
      after = Math.max(after, a.id);
      if (box.querySelector(`article[data-id="${a.id}"]`)) return;
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      box.prepend(card(a));
    });
    src.addEventListener("status", ev => { const s = JSON.parse(ev.data); setStatus(s.id, s.status); });
    src.addEventListener("alarm", ev => {
      const s = JSON.parse(ev.data);
      const art = box.querySelector(`article[data-id="${s.id}"]`);
      if (art) setAlarm(art, s.alarm);
    });
  }

  // A connection that stays "connecting" (a server that accepted but never answers) is replaced too.
  setInterval(() => {
    if (src && src.readyState !== EventSource.OPEN && !timer) { src.close(); lost(); later(); }
  }, 20000);

  box.addEventListener("click", async ev => {
    const b = ev.target.closest("button");
    if (!b) return;
    const id = b.dataset.id;
    if (b.closest(".alarm-actions")) { alarmAction(b, id); return; }
    try {
      let r;
      if (b.classList.contains("confirm")) {
        r = await api("POST", `/api/alerts/${id}/confirm`);
      } else {
        const reason = window.prompt(t("Why is alert #{id} wrong? (kept as feedback)", { id }));
        if (!reason) return;
        r = await api("POST", `/api/alerts/${id}/reject`, { reason });
      }
      setStatus(id, r.status);
      flash(r.status === "confirmed_once"
        ? t("Alert #{id} confirmed once: a second, different operator must confirm it.", { id })
        : t("Alert #{id}: {status}", { id, status: t(r.status) }));
    } catch (e) { flash(t("Alert #{id}: {status}", { id, status: e.message }), true); }
  });

  async function alarmAction(b, id) {
    const action = ["claim", "release", "takeover", "acknowledge"].find(c => b.classList.contains(c));
    let body;
    if (action === "takeover") {
      const reason = window.prompt(t("Why do you take over alarm #{id}? (its owner and the audit log see it)", { id }));
      if (!reason) return;
      body = { reason };
    }
    try {
      const r = await api("POST", `/api/alerts/${id}/${action}`, body);
      const art = box.querySelector(`article[data-id="${id}"]`);
      if (art) setAlarm(art, r.alarm);
      const state = tp("alarm", r.alarm.state);
      flash(r.alarm.owner ? t("Alarm #{id}: {state} by {owner}", { id, state, owner: r.alarm.owner })
        : t("Alarm #{id}: {state}", { id, state }));
    } catch (e) { flash(t("Alarm #{id}: {state}", { id, state: e.message }), true); }
  }

  // the server-rendered cards: their alarm as data, drawn the same way as live ones
  box.querySelectorAll("article.alert").forEach(art => {
    const p = art.querySelector("p.alarm");
    setAlarm(art, p ? JSON.parse(p.dataset.alarm) : null);
  });
  setInterval(tick, 1000);
  connect();
})();
