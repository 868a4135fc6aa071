// Shared helpers: JSON calls to the API with the session's CSRF token, and a status line.
"use strict";
const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

async function api(method, url, body) {
  const opts = { method, headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin" };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const res = await fetch(url, opts);
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!res.ok) {
    let msg = data && data.detail !== undefined ? data.detail : text;
    if (Array.isArray(msg)) msg = msg.map(e => (e.loc || []).join(".") + ": " + e.msg).join("; ");
    const err = new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
    err.status = res.status; err.data = data;
    throw err;
  }
  return data;
}

function flash(text, bad) {
  const el = document.getElementById("flash");
  if (!el) return;
  el.textContent = text;
  el.className = bad ? "bad" : "";
}
