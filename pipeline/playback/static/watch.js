// The player: live by default, a time range on demand; shows live latency and posts beacons.
"use strict";
(() => {
  const { api, withToken } = camlog;
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const video = document.getElementById("video");
  const status = document.getElementById("status");
  const errorBox = document.getElementById("error");
  const latency = document.getElementById("latency");
  const mode = document.getElementById("mode");
  const base = `/v1/streams/${encodeURIComponent(id)}`;
  document.getElementById("title").textContent = id;
  document.getElementById("home").href = withToken("/");
  // State the page exposes for operators' consoles and for the browser tests.
  const state = window.camlogPlayer = { errors: [], startupMs: null, rebuffers: 0, hls: null };
  let hls = null, playStart = 0, pendingRebuffers = 0, started = false;

  function fail(msg) {
    state.errors.push(msg);
    errorBox.textContent = msg;
    errorBox.hidden = false;
    beacon({ error: String(msg).slice(0, 500) });
  }

  function beacon(extra) {
    const body = Object.assign({ stream_id: id }, extra);
    api("/v1/beacons", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" } }).catch(() => {});
  }

  function load(url, label) {
    if (hls) hls.destroy();
    errorBox.hidden = true;
    started = false;
    mode.textContent = label;
    playStart = performance.now();
    if (!window.Hls || !Hls.isSupported()) {
      if (video.canPlayType("application/vnd.apple.mpegurl")) { video.src = withToken(url); video.play(); return; }
      fail("this browser cannot play HLS");
      return;
    }
    hls = state.hls = new Hls({ liveSyncDurationCount: 2, lowLatencyMode: false,
      xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", "Bearer " + camlog.token) });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (data.fatal) {
        fail(`${data.type}: ${data.details}`);
        if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls.startLoad(), 2000);
        else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      }
    });
    hls.loadSource(withToken(url));
    hls.attachMedia(video);
    video.play().catch(() => {});
  }

  video.addEventListener("playing", () => {
    if (!started) {
      started = true;
      state.startupMs = performance.now() - playStart;
      beacon({ startup_ms: state.startupMs });
    }
  });
  video.addEventListener("waiting", () => { if (started) { state.rebuffers += 1; pendingRebuffers += 1; } });
  setInterval(() => {
    if (pendingRebuffers) { beacon({ rebuffers: pendingRebuffers }); pendingRebuffers = 0; }
  }, 10000);

  setInterval(() => {
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const date = hls && hls.playingDate;
    const lat = date && mode.textContent === "live" ? (Date.now() - date.getTime()) / 1000 : null;
    state.latencyS = lat;
    latency.textContent = lat !== null ? `latency ${lat.toFixed(1)} s` : "";
    status.textContent = `t=${video.currentTime.toFixed(1)} s` +
      (q ? ` · ${q.totalVideoFrames} frames, ${q.droppedVideoFrames} dropped` : "") +
      (date ? ` · ${date.toISOString()}` : "");
  }, 500);

  const pad = (n) => String(n).padStart(2, "0");
  const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const startIn = document.getElementById("start"), endIn = document.getElementById("end");
  const clip = document.getElementById("clip");
  function setDefaults() {
    const now = new Date();
    endIn.value = local(now);
    startIn.value = local(new Date(now.getTime() - 5 * 60 * 1000));
  }
  function rangeQuery() {
    const s = new Date(startIn.value).getTime() / 1000, e = new Date(endIn.value).getTime() / 1000;
    return `start=${s}&end=${e}`;
  }
  document.getElementById("range").addEventListener("submit", (ev) => {
    ev.preventDefault();
    load(`${base}/vod.m3u8?${rangeQuery()}`, "recording");
    clip.href = withToken(`${base}/clip.mp4?${rangeQuery()}`);
  });
  document.getElementById("golive").addEventListener("click", () => load(`${base}/live.m3u8`, "live"));
  startIn.addEventListener("change", () => { clip.href = withToken(`${base}/clip.mp4?${rangeQuery()}`); });
  setDefaults();
  clip.href = withToken(`${base}/clip.mp4?${rangeQuery()}`);

  const q = new URLSearchParams(location.search);
  if (q.get("start") && q.get("end")) load(`${base}/vod.m3u8?start=${q.get("start")}&end=${q.get("end")}`, "recording");
  else load(`${base}/live.m3u8`, "live");
})();
