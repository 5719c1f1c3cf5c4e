// The player. It never gives up on what can recover: a stream not live yet, an empty playlist,
// a 404/503 or a network error show a waiting state and are retried with backoff; a stalled
// stream says why (offline since …, processing behind) and resumes by itself. Only what cannot
// recover (a refused token, an invalid stream id) is fatal, and says what to do.
"use strict";
(() => {
  const { request, withToken, auth, tokenAdvice, ago, clock } = camlog;
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const $ = (x) => document.getElementById(x);
  const video = $("video"), banner = $("banner"), errorBox = $("error"), latency = $("latency");
  const mode = $("mode"), camera = $("camera"), statusLine = $("status");
  const base = `/v1/streams/${encodeURIComponent(id)}`;
  const MAX_CLIP_S = 600;
  $("title").textContent = id;
  document.title = `camlog — ${id}`;
  video.setAttribute("aria-label", `video from ${id}`);
  $("home").href = withToken("/");

  // State the page exposes for operators' consoles and for the browser tests. ``errors`` holds
  // fatal errors only; what was waited for (and recovered from) goes to ``waits``.
  const state = window.camlogPlayer = {
    errors: [], waits: [], state: "connecting", reason: "", info: null, startupMs: null,
    playingAt: null, rebuffers: 0, restarts: 0, probes: 0, hls: null, latencyS: null,
  };
  let hls = null, gen = 0, timer = null, attempt = 0, playStart = 0, started = false;
  let fatal = false, live = true, pollTimer = null, mediaRecoveries = 0;
  let lastT = -1, lastAdvance = performance.now(), lastRestart = 0;

  function show(kind, text) {
    if (state.state !== kind || state.reason !== text) {
      state.state = kind;
      state.reason = text;
      banner.dataset.state = kind;
      document.body.dataset.state = kind;
      banner.textContent = text;
      banner.hidden = kind === "playing";
    }
  }

  function beacon(extra) {
    const body = Object.assign({ stream_id: id }, extra);
    request("/v1/beacons", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" } });
  }

  function stopPlayer() {
    clearTimeout(timer);
    gen += 1;
    if (hls) { hls.destroy(); hls = state.hls = null; }
  }

  function giveUp(msg) {
    if (fatal) return;
    fatal = true;
    stopPlayer();
    clearTimeout(pollTimer);
    state.errors.push(msg);
    errorBox.textContent = msg;
    errorBox.hidden = false;
    show("fatal", "cannot play " + id);
    beacon({ error: String(msg).slice(0, 500) });
  }

  // Waiting: the words say for what and why; the retry backs off up to ``cap`` seconds.
  function wait(reason, retry, cap, after) {
    if (state.waits[state.waits.length - 1] !== reason) state.waits.push(reason);
    state.waits = state.waits.slice(-50);
    const info = state.info;
    if (live && info && info.state === "offline") {
      show("offline", `${id} is offline since ${info.offline_since ? clock(info.offline_since) + " (" + ago(info.offline_since) + ")" : "a while"} — playback resumes by itself when the camera is back`);
    } else if (live && info && info.state === "behind") {
      show("behind", `processing ${Math.round(info.behind_s)} s behind — video resumes when it catches up`);
    } else {
      show("waiting", `waiting for video from ${id}… (${reason})`);
    }
    const delay = after || Math.min(cap, 0.5 * Math.pow(1.6, attempt)) * (0.85 + 0.3 * Math.random());
    attempt += 1;
    const my = gen;
    clearTimeout(timer);
    timer = setTimeout(() => { if (my === gen && !fatal) retry(); }, delay * 1000);
  }

  // Refusals that cannot recover by waiting; anything else is waited for.
  function isFatal(status, problem) {
    if (status === 401 || status === 403) { giveUp(tokenAdvice(status, problem, id)); return true; }
    if (status === 400 && problem === "bad_id") { giveUp(`"${id}" is not a valid stream id. Check the address.`); return true; }
    return false;
  }

  // Live: look at the playlist first, start hls.js only once it has a segment.
  async function probeLive() {
    const my = gen;
    state.probes += 1;
    const r = await request(`${base}/live.m3u8`);
    if (my !== gen || fatal) return;
    if (isFatal(r.status, r.problem)) return;
    if (r.status === 0) return wait("cannot reach the playback service", probeLive, 10);
    if (r.status === 404) return wait("the camera has not sent video yet", probeLive, 1);
    if (r.status === 503) return wait("the segment store is not answering", probeLive, 10, r.retryAfter);
    if (r.status !== 200) return wait(`the service answered ${r.status} ${r.problem}`, probeLive, 10);
    if (!r.text.includes("#EXTINF")) return wait("the live playlist has no segment yet", probeLive, 1);
    startHls(`${base}/live.m3u8`);
  }

  function describe(data) {
    const code = data.response && data.response.code;
    if (data.details === "levelEmptyError") return "the live playlist has no segment yet";
    if (code) return `${data.details} (HTTP ${code})`;
    return data.details;
  }

  function startHls(url) {
    stopPlayer();
    const my = gen;
    errorBox.hidden = true;
    started = false;
    playStart = performance.now();
    lastAdvance = performance.now();
    if (!window.Hls || !Hls.isSupported()) {
      if (video.canPlayType("application/vnd.apple.mpegurl")) { video.src = withToken(url); video.play().catch(() => {}); return; }
      giveUp("This browser cannot play HLS video (no Media Source Extensions). Try a current Chrome, Firefox, Edge or Safari.");
      return;
    }
    hls = state.hls = new Hls({
      // LL-HLS playlists (PART-HOLD-BACK, blocking reload, parts) when the origin has them;
      // whole-segment playlists keep the two-segment hold-back.
      liveSyncDurationCount: 2, liveMaxLatencyDurationCount: 8, lowLatencyMode: true,
      maxLiveSyncPlaybackRate: 1.5,  // after a stall, catch up with the live edge by playing faster
      manifestLoadingMaxRetry: 2, levelLoadingMaxRetry: 4, fragLoadingMaxRetry: 4,
      xhrSetup: (xhr) => { const h = auth(); xhr.setRequestHeader("Authorization", h.Authorization); },
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (my !== gen || !data.fatal) return;
      const code = data.response && data.response.code;
      if (isFatal(code, code === 403 ? "token_scope" : "")) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 3) {
        mediaRecoveries += 1;
        hls.recoverMediaError();
        return;
      }
      stopPlayer();
      wait(describe(data), live ? probeLive : () => startHls(url), 10);
    });
    hls.loadSource(withToken(url));
    hls.attachMedia(video);
    video.play().catch(() => {});
  }

  video.addEventListener("playing", () => {
    attempt = 0;
    mediaRecoveries = 0;
    if (!started) {
      started = true;
      state.startupMs = performance.now() - playStart;
      state.playingAt = Date.now();
      beacon({ startup_ms: state.startupMs });
    }
  });
  let pendingRebuffers = 0;
  video.addEventListener("waiting", () => { if (started) { state.rebuffers += 1; pendingRebuffers += 1; } });
  setInterval(() => {
    if (pendingRebuffers) { beacon({ rebuffers: pendingRebuffers }); pendingRebuffers = 0; }
  }, 10000);

  // What the pipeline says about the stream (live, behind, offline, waiting): one small request
  // every few seconds, so a stalled picture can say why.
  async function poll() {
    if (fatal) return;
    const r = await request(base);
    if (fatal) return;
    if (isFatal(r.status, r.problem)) return;
    let next = 3;
    if (r.status === 200 && r.body) state.info = r.body;
    else if (r.status === 404) state.info = null;
    else next = 10;
    const s = state.info;
    camera.textContent = !s ? "not seen yet" : s.state === "live" ? "camera online"
      : s.state === "behind" ? `processing ${Math.round(s.behind_s)} s behind`
      : s.state === "offline" ? "camera offline" : "waiting for first video";
    camera.className = "badge " + (s ? s.state : "waiting");
    pollTimer = setTimeout(poll, next * 1000);
  }

  // The watchdog: a live picture that stops moving says why, and is restarted once newer media
  // exists (a camera back with a new session, a worker that caught up).
  function targetS() {
    const lv = hls && hls.levels && hls.levels[hls.currentLevel >= 0 ? hls.currentLevel : 0];
    return (lv && lv.details && lv.details.targetduration) || 2;
  }
  setInterval(() => {
    const now = performance.now();
    if (video.currentTime !== lastT) { lastT = video.currentTime; lastAdvance = now; }
    if (fatal || !hls || !started) return;
    if (!live && video.ended) { show("ended", "end of the recording — pick another range, or Live"); return; }
    if (video.paused && !video.ended) { lastAdvance = now; return; }  // paused by the viewer
    const stallS = Math.max(4, 2 * targetS());
    const stalled = (now - lastAdvance) / 1000 > stallS;
    const info = state.info;
    if (!stalled) {
      if (live && info && info.state === "behind") show("behind", `processing ${Math.round(info.behind_s)} s behind — the picture is late`);
      else show("playing", "");
      return;
    }
    if (!live) { show("waiting", `waiting for the recording to load…`); return; }
    if (info && info.state === "offline") show("offline", `${id} is offline since ${info.offline_since ? clock(info.offline_since) + " (" + ago(info.offline_since) + ")" : "a while"} — playback resumes by itself when the camera is back`);
    else if (info && info.state === "behind") show("behind", `processing ${Math.round(info.behind_s)} s behind — video resumes when it catches up`);
    else show("waiting", `waiting for video from ${id}… (no new segment)`);
    const edge = hls.liveSyncPosition;
    if (edge && edge > video.currentTime + targetS()) video.currentTime = edge;  // jump to new media
    if ((now - lastRestart) / 1000 > 2 * stallS && (now - lastAdvance) / 1000 > 2 * stallS
        && (!info || info.state === "live" || info.state === "waiting")) {
      lastRestart = now;
      state.restarts += 1;
      stopPlayer();
      probeLive();
    }
  }, 1000);

  // Latency and position, twice a second.
  setInterval(() => {
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    const date = hls && hls.playingDate;
    const lat = date && live && state.state !== "fatal" ? (Date.now() - date.getTime()) / 1000 : null;
    state.latencyS = lat;
    latency.textContent = lat !== null ? `latency ${lat.toFixed(1)} s` : "";
    statusLine.textContent = `t=${video.currentTime.toFixed(1)} s` +
      (q ? ` · ${q.totalVideoFrames} frames, ${q.droppedVideoFrames} dropped` : "") +
      (date ? ` · showing ${date.toLocaleString()}` : "");
  }, 500);

  // Controls: live / recording, a range, jump to a time, the clip of the shown range.
  const pad = (n) => String(n).padStart(2, "0");
  const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  const startIn = $("start"), endIn = $("end"), atIn = $("at"), clip = $("clip"), clipHint = $("cliphint");
  const secs = (input) => new Date(input.value).getTime() / 1000;
  function setRange(s, e) { startIn.value = local(new Date(s * 1000)); endIn.value = local(new Date(e * 1000)); updateClip(); }
  function updateClip() {
    const s = secs(startIn), e = secs(endIn);
    if (!(e > s)) { clip.removeAttribute("href"); clipHint.textContent = "(the range is empty)"; return; }
    const end = Math.min(e, s + MAX_CLIP_S);
    clip.href = withToken(`${base}/clip.mp4?start=${s}&end=${end}`);
    clip.setAttribute("download", `${id}-${startIn.value.replace(/[:T]/g, "-")}.mp4`);
    clipHint.textContent = e - s > MAX_CLIP_S ? `(the first ${MAX_CLIP_S / 60} min of the range)` : `(${Math.round(end - s)} s)`;
  }
  function setMode(isLive) {
    live = isLive;
    mode.textContent = isLive ? "live" : "recording";
    $("golive").setAttribute("aria-pressed", String(isLive));
    $("gorange").setAttribute("aria-pressed", String(!isLive));
    attempt = 0;
  }
  // Until the viewer edits the range, it follows the live edge (the last 5 minutes).
  let rangeEdited = false;
  const followLive = () => { if (!rangeEdited) { const now = Date.now() / 1000; setRange(now - 300, now); } };
  setInterval(() => { if (live) followLive(); }, 5000);
  function playLive() {
    setMode(true);
    rangeEdited = false;
    followLive();
    show("connecting", `connecting to ${id}…`);
    stopPlayer();
    probeLive();
  }
  function playRange(s, e) {
    if (!(e > s)) { errorBox.textContent = "The end of the range must be after its start."; errorBox.hidden = false; return; }
    setMode(false);
    setRange(s, e);
    show("connecting", `loading the recording of ${id}…`);
    stopPlayer();
    probeRange(s, e);
  }
  async function probeRange(s, e) {
    const my = gen;
    const url = `${base}/vod.m3u8?start=${s}&end=${e}`;
    const r = await request(url);
    if (my !== gen || fatal || isFatal(r.status, r.problem)) return;
    if (r.status === 404) { show("empty", "nothing was recorded in that range — pick another time"); return; }
    if (r.status === 400) { show("empty", `that range cannot be played: ${(r.body && r.body.detail) || r.problem}`); return; }
    if (r.status !== 200) return wait(r.status === 0 ? "cannot reach the playback service" : `the service answered ${r.status}`, () => probeRange(s, e), 10, r.retryAfter);
    startHls(url);
  }
  $("golive").addEventListener("click", playLive);
  $("gorange").addEventListener("click", () => { if (live) followLive(); playRange(secs(startIn), secs(endIn)); });
  $("range").addEventListener("submit", (ev) => { ev.preventDefault(); playRange(secs(startIn), secs(endIn)); });
  $("jump").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const at = secs(atIn);
    playRange(at, Math.min(at + 300, Date.now() / 1000));
  });
  for (const input of [startIn, endIn]) input.addEventListener("change", () => { rangeEdited = true; updateClip(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest("input, textarea, select") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "l" || ev.key === "L") playLive();
  });
  atIn.value = local(new Date(Date.now() - 60 * 1000));

  const q = new URLSearchParams(location.search);
  poll();
  const when = (v) => (Number.isFinite(Number(v)) ? Number(v) : Date.parse(v) / 1000);
  if (q.get("start") && q.get("end")) playRange(when(q.get("start")), when(q.get("end")));
  else playLive();
})();
