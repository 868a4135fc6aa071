// Shared helpers: the page's language (t, tn, when), JSON calls to the API with the session's CSRF token, and a
// status line.
"use strict";
// The catalogue of the page's language (/i18n/<code>.js, loaded before this script); English: the message ids.
const I18N = window.METROSIGHT_I18N || { lang: "en", messages: {} };
const LANG = document.documentElement.lang || I18N.lang || "en";
const TZ = document.documentElement.dataset.tz || "UTC";

// "{name}" in a message is replaced by vars.name.
function fill(text, vars) {
  return vars ? text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : text;
}

// The translation of a message (extracted by Babel: only string literals as the first argument).
function t(message, vars) {
  const s = I18N.messages[message];
  return fill(typeof s === "string" && s ? s : message, vars);
}

// The translation of a message in a context (one English word, two meanings: tp("alarm", "new")).
function tp(context, message, vars) {
  const s = I18N.messages[context + "\u0004" + message];
  return fill(typeof s === "string" && s ? s : message, vars);
}

// The translation of a message with a count n (vars.n is n): the plural form of the language's rule.
function tn(singular, plural, n, vars) {
  const forms = I18N.messages[singular];
  let s = n === 1 ? singular : plural;
  if (forms && typeof forms === "object") {
    const cat = new Intl.PluralRules(LANG).select(n);
    s = forms[cat] || forms.other || s;
  }
  return fill(s, Object.assign({ n }, vars));
}

// A number with `digits` decimals in the page's language (0,962 in Russian).
function num(value, digits) {
  return new Intl.NumberFormat(LANG, { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false })
    .format(value);
}

// A date and time (a Date, ISO text or Unix seconds) in the page's zone and language, as the server shows it.
function when(value) {
  if (value === null || value === undefined || value === 0 || value === "") return "—";
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (isNaN(d.getTime())) return "—";
  try {
    return new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeStyle: "medium", timeZone: TZ }).format(d);
  } catch (e) {
    return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
}
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
