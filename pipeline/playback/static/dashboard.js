// The stream dashboard. One listing request per 500 streams every 5 s; only one page of cards
// is in the DOM, and only its thumbnails load (each at most every 30 s), so 500 streams cost
// about as much as 24. Cards are kept and updated in place: no image reloads on refresh.
"use strict";
(() => {
  const { api, withToken, fmtBitrate, ago, el } = camlog;
  const PAGE = 24, REFRESH_MS = 5000, THUMB_MS = 30000;
  const $ = (x) => document.getElementById(x);
  const grid = $("streams"), summary = $("summary"), error = $("error"), note = $("note");
  const filter = $("filter"), stateSel = $("state"), pageLabel = $("page");
  const cards = new Map();  // stream id -> {root, img, ph, badge, meta, seen, thumbAt}
  let all = [], page = 0, updated = null;

  const LABEL = { live: "online", offline: "offline", waiting: "waiting for video" };
  const label = (s) => s.state === "behind" ? `processing ${Math.round(s.behind_s)} s behind` : LABEL[s.state] || s.state;

  function makeCard(s) {
    const img = el("img", { alt: `latest picture from ${s.stream_id}`, hidden: "" });
    const ph = el("div", { class: "ph", "aria-hidden": "true" }, "no picture yet");
    img.onload = () => { img.hidden = false; ph.hidden = true; };
    img.onerror = () => { img.hidden = true; ph.hidden = false; ph.textContent = "no picture yet"; };
    const badge = el("span", { class: "badge" });
    const meta = el("div", { class: "meta" }), seen = el("div", { class: "meta" });
    const root = el("a", { class: "card", href: withToken(s.links.watch), "data-stream": s.stream_id },
      el("div", { class: "thumb" }, ph, img),
      el("div", { class: "body" }, el("strong", {}, s.stream_id), " ", badge, meta, seen));
    const c = { root, img, ph, badge, meta, seen, thumbAt: 0 };
    cards.set(s.stream_id, c);
    return c;
  }

  function update(c, s) {
    c.root.dataset.state = s.state;
    c.badge.className = "badge " + s.state;
    c.badge.textContent = label(s);
    const res = s.width ? `${s.width}×${s.height}` : "–";
    c.meta.textContent = `${res} · ${s.fps ? s.fps.toFixed(1) : "–"} fps · ${fmtBitrate(s.bitrate)} · ${s.codec || ""}`;
    c.seen.textContent = s.state === "offline" ? "offline since " + ago(s.offline_since || s.last_seen)
      : s.state === "behind" ? "frames acknowledged, not yet processed"
      : "last frame processed " + ago(s.last_seen);
    const now = Date.now();
    if (s.segments > 0 && now - c.thumbAt >= THUMB_MS) {
      c.thumbAt = now;
      c.img.src = withToken(s.links.thumbnail) + "&r=" + Math.floor(now / THUMB_MS);
    }
  }

  function shown() {
    const f = filter.value.trim().toLowerCase(), st = stateSel.value;
    return all.filter((s) => (!f || s.stream_id.toLowerCase().includes(f)) && (!st || s.state === st));
  }

  function render() {
    const list = shown();
    const pages = Math.max(1, Math.ceil(list.length / PAGE));
    page = Math.min(page, pages - 1);
    const visible = list.slice(page * PAGE, page * PAGE + PAGE);
    grid.replaceChildren(...visible.map((s) => {
      const c = cards.get(s.stream_id) || makeCard(s);
      update(c, s);
      return c.root;
    }));
    if (cards.size > 4 * PAGE) {  // keep only the cards near what is shown
      const keep = new Set(visible.map((s) => s.stream_id));
      for (const k of cards.keys()) if (!keep.has(k)) cards.delete(k);
    }
    pageLabel.textContent = `page ${page + 1} of ${pages}`;
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
    const n = (k) => all.filter((s) => s.state === k).length;
    summary.textContent = `${all.length} streams · ${n("live")} online · ${n("behind")} processing behind · ` +
      `${n("offline")} offline · ${n("waiting")} waiting` + (updated ? ` · updated ${updated.toLocaleTimeString()}` : "");
    const unknown = all.length && all.every((s) => s.behind_s === null);
    note.hidden = !unknown;
    note.textContent = unknown ? "The bridge's status is unavailable: a camera whose processing is behind shows as offline." : "";
  }

  async function refresh() {
    try {
      const got = [];
      let cursor = null;
      do {
        const p = await api("/v1/streams?limit=500" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
        got.push(...p.streams);
        cursor = p.next_cursor;
      } while (cursor && got.length < 20000);
      got.sort((a, b) => a.stream_id.localeCompare(b.stream_id));
      all = got;
      updated = new Date();
      error.hidden = true;
    } catch (e) {
      error.textContent = `cannot list streams: ${e.message}` + (e.status === 401 || e.status === 403
        ? " — open this page with a valid viewer token (?token=…)" : updated ? ` — showing the list of ${updated.toLocaleTimeString()}, retrying` : " — retrying");
      error.hidden = false;
      if (e.status === 401 || e.status === 403) { summary.textContent = "no access"; return; }
    }
    render();
    setTimeout(refresh, REFRESH_MS);
  }
  filter.addEventListener("input", () => { page = 0; render(); });
  stateSel.addEventListener("change", () => { page = 0; render(); });
  $("prev").addEventListener("click", () => { page = Math.max(0, page - 1); render(); });
  $("next").addEventListener("click", () => { page += 1; render(); });
  refresh();
})();
