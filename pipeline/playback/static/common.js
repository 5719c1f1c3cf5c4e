// Shared by the pages: the viewer token comes from ?token= once and is kept for the tab.
"use strict";
const camlog = (() => {
  const q = new URLSearchParams(location.search);
  if (q.get("token")) sessionStorage.setItem("camlog-token", q.get("token"));
  const token = sessionStorage.getItem("camlog-token") || "";
  const withToken = (url) => url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  async function api(path, init = {}) {
    const headers = Object.assign({ Authorization: "Bearer " + token }, init.headers || {});
    const r = await fetch(path, Object.assign({}, init, { headers }));
    const body = r.headers.get("content-type", "").includes("json") ? await r.json() : null;
    if (!r.ok) throw new Error((body && (body.detail || body.title)) || r.statusText);
    return body;
  }
  const fmtBitrate = (b) => b >= 1e6 ? (b / 1e6).toFixed(2) + " Mb/s" : Math.round(b / 1e3) + " kb/s";
  const ago = (iso) => {
    if (!iso) return "never";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : new Date(iso).toLocaleString();
  };
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) k === "class" ? (e.className = v) : e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  };
  return { token, withToken, api, fmtBitrate, ago, el };
})();
