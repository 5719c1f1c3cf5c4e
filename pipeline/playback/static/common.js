// Shared by the pages: the viewer token comes from ?token= once and is kept for the tab.
"use strict";
const camlog = (() => {
  const q = new URLSearchParams(location.search);
  if (q.get("token")) sessionStorage.setItem("camlog-token", q.get("token"));
  const token = sessionStorage.getItem("camlog-token") || "";
  const withToken = (url) => url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  const auth = () => ({ Authorization: "Bearer " + token });

  // A request that never throws: {status (0 = network error), body, problem, retryAfter, text}.
  async function request(path, init = {}) {
    const headers = Object.assign(auth(), init.headers || {});
    let r;
    try {
      r = await fetch(path, Object.assign({ cache: "no-store" }, init, { headers }));
    } catch (e) {
      return { status: 0, body: null, problem: "network", text: "", retryAfter: null };
    }
    const type = r.headers.get("content-type") || "";
    const text = await r.text().catch(() => "");
    let body = null;
    if (type.includes("json")) { try { body = JSON.parse(text); } catch (e) { body = null; } }
    const ra = Number(r.headers.get("retry-after"));
    return { status: r.status, body, text, retryAfter: Number.isFinite(ra) && ra > 0 ? ra : null,
             problem: body && body.title ? body.title : r.ok ? "" : r.statusText };
  }

  async function api(path, init = {}) {
    const r = await request(path, init);
    if (r.status < 200 || r.status > 299) {
      const err = new Error(r.status === 0 ? "the playback service does not answer"
        : (r.body && (r.body.detail || r.body.title)) || "HTTP " + r.status);
      err.status = r.status;
      throw err;
    }
    return r.body;
  }

  // What a viewer can do about a refused token (401/403): words, not codes.
  function tokenAdvice(status, problem, stream) {
    const ask = "Ask whoever gave you this link for a new one (camlog token viewer …).";
    if (problem === "token_missing") return "This page needs a viewer token: open it with ?token=… in the address. " + ask;
    if (problem === "token_expired") return "Your viewer token has expired. " + ask;
    if (status === 403) return `Your viewer token does not cover ${stream || "this stream"}. ` + ask;
    return `Your viewer token was refused (${problem || status}). ` + ask;
  }

  const fmtBitrate = (b) => b >= 1e6 ? (b / 1e6).toFixed(2) + " Mb/s" : Math.round(b / 1e3) + " kb/s";
  const ago = (iso) => {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : new Date(iso).toLocaleString();
  };
  const clock = (iso) => new Date(iso).toLocaleTimeString();
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) k === "class" ? (e.className = v) : e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  };
  return { token, withToken, auth, request, api, tokenAdvice, fmtBitrate, ago, clock, el };
})();
