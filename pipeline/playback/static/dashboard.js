// The stream dashboard: one card per stream, refreshed every few seconds.
"use strict";
(() => {
  const { api, withToken, fmtBitrate, ago, el } = camlog;
  const grid = document.getElementById("streams");
  const summary = document.getElementById("summary");
  const error = document.getElementById("error");
  let tick = 0;

  function card(s) {
    const img = el("img", { alt: s.stream_id, src: withToken(s.links.thumbnail) + "&r=" + tick, loading: "lazy" });
    img.onerror = () => { img.removeAttribute("src"); };
    const res = s.width ? `${s.width}×${s.height}` : "–";
    return el("a", { class: "card", href: withToken(s.links.watch), "data-stream": s.stream_id },
      img,
      el("div", { class: "body" },
        el("strong", {}, s.stream_id), " ",
        el("span", { class: "badge " + (s.online ? "online" : "offline") }, s.online ? "online" : "offline"),
        el("div", { class: "meta" }, `${res} · ${s.fps ? s.fps.toFixed(1) : "–"} fps · ${fmtBitrate(s.bitrate)} · ${s.codec || ""}`),
        el("div", { class: "meta" }, "last seen " + ago(s.last_seen))));
  }

  async function refresh() {
    tick += 1;
    try {
      const all = [];
      let cursor = null;
      do {
        const page = await api("/v1/streams?limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
        all.push(...page.streams);
        cursor = page.next_cursor;
      } while (cursor && all.length < 2000);
      grid.replaceChildren(...all.map(card));
      const online = all.filter((s) => s.online).length;
      summary.textContent = `${all.length} streams, ${online} online`;
      error.hidden = true;
    } catch (e) {
      error.textContent = "cannot list streams: " + e.message;
      error.hidden = false;
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
