// The page side of the interop runner: every step drives the published SDK
// (@odysseyml/odyssey) exactly as an application would, and returns a small
// JSON-able result. The driver (driver.mjs) calls the steps in order through
// puppeteer and judges the results. Every wait here has a timeout.
import {
  Odyssey,
  MonthlyLimitReachedError,
  OdysseyUsageError,
} from '@odysseyml/odyssey';

const params = new URLSearchParams(location.search);
const API_KEY = params.get('key');

// The SDK takes its API base URL from window.__ODYSSEY_API_URL__ when a client is constructed.
function clientFor(apiUrl, apiKey) {
  const saved = window.__ODYSSEY_API_URL__;
  window.__ODYSSEY_API_URL__ = apiUrl;
  try {
    return new Odyssey(apiKey === undefined ? undefined : { apiKey });
  } finally {
    window.__ODYSSEY_API_URL__ = saved;
  }
}
const SHORT_URL = params.get('short');

const events = [];
const state = {
  client: null,
  stream: null,
  streamIds: [],
  broadcast: null,
  spectator: null,
  spectatorDisconnected: false,
};

function note(kind, detail) {
  events.push({ t: Math.round(performance.now()), kind, detail });
  document.getElementById('status').textContent = `${kind} ${detail ?? ''}`;
}

function handlers() {
  return {
    onConnected: () => note('onConnected'),
    onDisconnected: () => note('onDisconnected'),
    onStreamStarted: (id) => note('onStreamStarted', id),
    onStreamEnded: () => note('onStreamEnded'),
    onInteractAcknowledged: (p) => note('onInteractAcknowledged', p),
    onStreamError: (reason, message) => note('onStreamError', `${reason}: ${message}`),
    onBroadcastReady: (info) => {
      state.broadcast = info;
      note('onBroadcastReady', info.webrtcUrl);
    },
    onError: (error, fatal) => note('onError', `${fatal ? 'fatal' : 'non-fatal'}: ${error && error.message}`),
    onStatusChange: (status, message) => note('onStatusChange', `${status}${message ? ' ' + message : ''}`),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function eventsSince(t0, kind) {
  return events.filter((e) => e.t >= t0 && (!kind || e.kind === kind));
}

async function waitFor(pred, ms, what, every = 50) {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const v = pred();
    if (v) return v;
    await sleep(every);
  }
  throw new Error(`timeout after ${ms} ms waiting for ${what}`);
}

// Pixel statistics of what a <video> shows now: mean luma and the share of non-black pixels.
function pixelStats(video) {
  const canvas = document.getElementById('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0);
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0;
  let nonBlack = 0;
  let n = 0;
  for (let i = 0; i < data.length; i += 4 * 97) {  // a sparse sample is plenty
    const y = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
    sum += y;
    if (y > 16) nonBlack++;
    n++;
  }
  return { meanLuma: Math.round(sum / n), nonBlackShare: +(nonBlack / n).toFixed(3), sample: Array.from(data.slice(0, 4)) };
}

// Wait until the video shows `width`x`height`, its time advances by `advanceS` and frames are presented.
async function checkVideo(video, { width, height, advanceS = 1.0, timeoutMs = 15000 }) {
  const t0 = performance.now();
  video.play().catch(() => {});
  await waitFor(() => video.videoWidth === width && video.videoHeight === height, timeoutMs,
    `video ${width}x${height} (now ${video.videoWidth}x${video.videoHeight})`);
  const firstSizeMs = Math.round(performance.now() - t0);
  const start = video.currentTime;
  let presented = 0;
  let counting = true;
  const count = () => { presented++; if (counting) video.requestVideoFrameCallback(count); };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(count);
  const tStart = performance.now();
  await waitFor(() => video.currentTime - start >= advanceS, timeoutMs,
    `currentTime to advance ${advanceS}s (from ${start.toFixed(2)}, now ${video.currentTime.toFixed(2)})`);
  const elapsedS = (performance.now() - tStart) / 1000;
  counting = false;
  const stats = pixelStats(video);
  return {
    videoWidth: video.videoWidth,
    videoHeight: video.videoHeight,
    firstSizeMs,
    advancedS: +(video.currentTime - start).toFixed(2),
    presentedFps: +(presented / elapsedS).toFixed(1),
    ...stats,
  };
}

async function attachedVideo(stream, id) {
  const video = document.getElementById(id);
  video.srcObject = stream;
  return video;
}

async function receiverStats(client) {
  // The SDK keeps its RTCPeerConnection private; the codec is visible through getStats on the media stream's receiver only via the pc.
  const pc = client.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let codec = null;
  let framesDecoded = null;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      framesDecoded = r.framesDecoded;
      const c = stats.get(r.codecId);
      if (c) codec = c.mimeType;
    }
  });
  return { codec, framesDecoded };
}

// A test image (PNG) of the given size: four coloured quadrants.
async function makeImage(w, h, type = 'image/png') {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const g = c.getContext('2d');
  g.fillStyle = '#d02020'; g.fillRect(0, 0, w / 2, h / 2);
  g.fillStyle = '#20d020'; g.fillRect(w / 2, 0, w / 2, h / 2);
  g.fillStyle = '#2020d0'; g.fillRect(0, h / 2, w / 2, h / 2);
  g.fillStyle = '#d0d020'; g.fillRect(w / 2, h / 2, w / 2, h / 2);
  return await new Promise((r) => c.toBlob(r, type, 0.9));
}

const steps = {
  async connectLoop() {
    // connect(), then at once startStream(), as applications write it; repeated to expose ordering races.
    const runs = [];
    for (let i = 0; i < Number(params.get('loops') || 10); i++) {
      const client = new Odyssey({ apiKey: API_KEY });
      const t0 = performance.now();
      const local = [];
      const h = handlers();
      const base = h.onStatusChange;
      h.onStatusChange = (s, m) => { local.push(`${Math.round(performance.now() - t0)}:${s}`); base(s, m); };
      const dcOpenAt = [];
      await withTimeout(client.connect(h), 20000, 'connect()');
      const statusAtResolve = client.currentStatus;
      const pcState = client.pc && client.pc.connectionState;
      let startError = null;
      try {
        await withTimeout(client.startStream({ prompt: 'A cat', portrait: false }), 10000, 'startStream()');
        await withTimeout(client.endStream(), 10000, 'endStream()');
      } catch (e) {
        startError = e.message;
      }
      runs.push({ statusAtResolve, pcState, resolvedMs: Math.round(performance.now() - t0), statuses: local.join(' '), startError });
      client.disconnect();
      await sleep(200);
    }
    return { runs, raced: runs.filter((r) => r.statusAtResolve !== 'connected').length };
  },

  async connect() {
    const t0 = performance.now();
    const client = new Odyssey({ apiKey: API_KEY });
    state.client = client;
    const stream = await withTimeout(client.connect(handlers()), 20000, 'connect()');
    state.stream = stream;
    const statusAtResolve = client.currentStatus;
    const pcStateAtResolve = client.pc && client.pc.connectionState;
    // startStream() right after connect() requires status 'connected'. On loopback the SDK can resolve
    // connect() when the data channel opens, just before its connectionstatechange handler sets 'connected'.
    if (statusAtResolve !== 'connected') await waitFor(() => client.currentStatus === 'connected', 3000, "status 'connected'");
    return {
      ms: Math.round(performance.now() - t0),
      status: statusAtResolve,
      pcStateAtResolve,
      statuses: eventsSince(0, 'onStatusChange').map((e) => `${Math.round(e.t - t0)}:${e.detail}`),
      isConnected: client.isConnected,
      sessionId: client.currentSessionId,
      videoTracks: stream.getVideoTracks().length,
      audioTracks: stream.getAudioTracks().length,
      apiUrl: client.config.apiUrl,
    };
  },

  async idleVideo() {
    // Video flows as soon as WebRTC connects, before any stream starts (idle scene, landscape size).
    const video = await attachedVideo(state.stream, 'main');
    const v = await checkVideo(video, { width: 1280, height: 704, advanceS: 0.5 });
    return { ...v, rtp: await receiverStats(state.client) };
  },

  async startStream() {
    const t0 = performance.now();
    const id = await withTimeout(state.client.startStream({ prompt: 'A cat', portrait: false }), 15000, 'startStream()');
    state.streamIds.push(id);
    const ev = eventsSince(t0, 'onStreamStarted');
    return { ms: Math.round(performance.now() - t0), streamId: id, lastAppliedPrompt: state.client.lastAppliedPrompt, onStreamStarted: ev.map((e) => e.detail) };
  },

  async streamVideo() {
    const video = document.getElementById('main');
    const before = pixelStats(video);
    const v = await checkVideo(video, { width: 1280, height: 704, advanceS: 1.5 });
    return { ...v, lumaBeforeCheck: before.meanLuma, rtp: await receiverStats(state.client) };
  },

  async interact() {
    const t0 = performance.now();
    const applied = await withTimeout(state.client.interact({ prompt: 'The cat sleeps' }), 10000, 'interact()');
    return {
      ms: Math.round(performance.now() - t0),
      applied,
      lastAppliedPrompt: state.client.lastAppliedPrompt,
      onInteractAcknowledged: eventsSince(t0, 'onInteractAcknowledged').map((e) => e.detail),
    };
  },

  async endStream() {
    const t0 = performance.now();
    await withTimeout(state.client.endStream(), 10000, 'endStream()');
    return { ms: Math.round(performance.now() - t0), onStreamEnded: eventsSince(t0, 'onStreamEnded').length, status: state.client.currentStatus };
  },

  async portraitDefault() {
    // startStream without `portrait` is portrait (704x1280) per the SDK's default.
    const t0 = performance.now();
    const id = await withTimeout(state.client.startStream({ prompt: 'A tall tower' }), 15000, 'startStream() portrait');
    state.streamIds.push(id);
    const v = await checkVideo(document.getElementById('main'), { width: 704, height: 1280, advanceS: 0.5 });
    await withTimeout(state.client.endStream(), 10000, 'endStream()');
    return { ms: Math.round(performance.now() - t0), streamId: id, ...v };
  },

  async imageToVideo() {
    const caps = state.client.capabilities;
    if (!caps || !caps.image_to_video) throw new Error(`capabilities.image_to_video is ${JSON.stringify(caps)}`);
    const image = await makeImage(640, 480);
    const t0 = performance.now();
    // An image start always goes over the signaling WebSocket in the SDK.
    const id = await withTimeout(state.client.startStream({ prompt: 'Robot dancing', portrait: false, image }), 20000, 'startStream({image})');
    state.streamIds.push(id);
    const v = await checkVideo(document.getElementById('main'), { width: 1280, height: 704, advanceS: 0.5 });
    await withTimeout(state.client.endStream(), 10000, 'endStream()');
    return { ms: Math.round(performance.now() - t0), streamId: id, imageBytes: image.size, lastAppliedPrompt: state.client.lastAppliedPrompt, ...v };
  },

  async broadcastStart() {
    state.broadcast = null;
    const t0 = performance.now();
    const id = await withTimeout(state.client.startStream({ prompt: 'A lighthouse', portrait: false, broadcast: true }), 15000, 'startStream({broadcast})');
    state.streamIds.push(id);
    const info = await waitFor(() => state.broadcast, 10000, 'onBroadcastReady');
    return { ms: Math.round(performance.now() - t0), streamId: id, hlsUrl: info.hlsUrl, webrtcUrl: info.webrtcUrl, tokenLength: info.spectatorToken.length };
  },

  async spectator() {
    const info = state.broadcast;
    if (!info) throw new Error('no broadcast info (broadcastStart failed)');
    const t0 = performance.now();
    const conn = await withTimeout(Odyssey.connectToStream(info.webrtcUrl, info.spectatorToken), 40000, 'connectToStream()');
    state.spectator = conn;
    conn.onDisconnect(() => { state.spectatorDisconnected = true; note('spectatorDisconnect'); });
    const connectMs = Math.round(performance.now() - t0);
    const video = await attachedVideo(conn.stream, 'spectator');
    const v = await checkVideo(video, { width: 1280, height: 704, advanceS: 1.0 });
    return { connectMs, connectionState: conn.connectionState, ...v };
  },

  async spectator2() {
    // A second viewer that stays on until the broadcast ends.
    const info = state.broadcast;
    const conn = await withTimeout(Odyssey.connectToStream(info.webrtcUrl, info.spectatorToken), 40000, 'connectToStream() #2');
    state.spectator2 = conn;
    state.spectator2Gone = null;
    conn.onDisconnect(() => { state.spectator2Gone = performance.now(); note('spectator2Disconnect', conn.connectionState); });
    const v = await checkVideo(await attachedVideo(conn.stream, 'spectator'), { width: 1280, height: 704, advanceS: 0.5 });
    return { connectionState: conn.connectionState, ...v };
  },

  async hlsPlaylist() {
    const info = state.broadcast;
    if (!info || !info.hlsUrl) throw new Error(`no hlsUrl (${JSON.stringify(info && info.hlsUrl)})`);
    const r = await withTimeout(fetch(info.hlsUrl, { cache: 'no-store' }), 5000, 'GET hlsUrl');
    const text = await r.text();
    return { status: r.status, contentType: r.headers.get('content-type'), firstLine: text.split('\n')[0], segments: (text.match(/^[^#].+$/gm) || []).length };
  },

  async spectatorDisconnect() {
    const conn = state.spectator;
    if (!conn) throw new Error('no spectator connection');
    conn.disconnect();  // WHEP DELETE, then close
    return { connectionState: conn.connectionState };
  },

  async broadcastEnd() {
    const t0 = performance.now();
    await withTimeout(state.client.endStream(), 10000, 'endStream() of the broadcast');
    const endMs = Math.round(performance.now() - t0);
    // The server closes every spectator when the broadcast ends; how long until the viewer notices?
    let spectatorGoneMs = null;
    let spectatorState = null;
    if (state.spectator2) {
      try {
        await waitFor(() => state.spectator2Gone, 40000, 'the remaining spectator to see the end');
        spectatorGoneMs = Math.round(state.spectator2Gone - t0);
      } catch (e) {
        spectatorGoneMs = -1;
      }
      spectatorState = state.spectator2.connectionState;
      state.spectator2.close();
    }
    return { ms: endMs, spectatorGoneMs, spectatorState };
  },

  async keepalive() {
    // Hold the connection for 12 s (the SDK sends a keepalive every 10 s); it must stay up and streaming.
    const video = document.getElementById('main');
    const before = video.currentTime;
    await sleep(12000);
    return { status: state.client.currentStatus, pcState: state.client.pc && state.client.pc.connectionState, advancedS: +(video.currentTime - before).toFixed(1) };
  },

  async bigPrompt() {
    // A start bigger than the data channel's limit: the SDK falls back to the signaling socket, and the
    // server refuses the over-long prompt (the same limit on every path) with a stream error; the
    // connection stays usable for the next start.
    const max = state.client.getMaxDataChannelMessageSize();
    const prompt = 'A very detailed scene. '.repeat(Math.ceil((max + 4096) / 23));  // just over the limit
    let startError = null;
    try {
      const id = await withTimeout(state.client.startStream({ prompt, portrait: false }), 15000, 'startStream(big)');
      state.streamIds.push(id);
      await withTimeout(state.client.endStream(), 10000, 'endStream()');
    } catch (e) {
      startError = e.message;
    }
    const id = await withTimeout(state.client.startStream({ prompt: 'A short prompt after a refused one', portrait: false }), 15000, 'startStream(after)');
    state.streamIds.push(id);
    await sleep(500);  // a recording needs frames
    await withTimeout(state.client.endStream(), 10000, 'endStream()');
    return { promptChars: prompt.length, maxDataChannelMessageSize: max, startError, streamId: id, status: state.client.currentStatus };
  },

  async bypassDenied() {
    // The key has no bypass privilege: the start is refused, the connection stays usable.
    let startError = null;
    try {
      await withTimeout(state.client.startStream({ prompt: 'x', portrait: false, bypassPromptExpansion: true }), 10000, 'startStream(bypass)');
      await state.client.endStream();
    } catch (e) {
      startError = e.message;
    }
    let simError = null;
    try {
      await new Odyssey({ apiKey: API_KEY }).simulate({ script: [{ timestamp_ms: 0, start: { prompt: 'x' } }, { timestamp_ms: 1000, end: {} }], bypassPromptExpansion: true });
    } catch (e) {
      simError = e.message;
    }
    return { startError, simError, status: state.client.currentStatus };
  },

  async streamLimit() {
    // Short server: streams last 2 s. The SDK gets interactive_stream_error session_timeout, then the socket closes (1000).
    const client = clientFor(SHORT_URL, API_KEY);
    const t0 = performance.now();
    await withTimeout(client.connect(handlers()), 20000, 'connect() to the short server');
    await withTimeout(client.startStream({ prompt: 'A short stream', portrait: false }), 10000, 'startStream()');
    await waitFor(() => eventsSince(t0, 'onStreamError').length, 10000, 'onStreamError');
    const errorMs = Math.round(performance.now() - t0);
    await waitFor(() => client.currentStatus !== 'connected', 10000, 'the connection to end');
    await sleep(300);
    const out = {
      errorMs,
      streamErrors: eventsSince(t0, 'onStreamError').map((e) => e.detail),
      onError: eventsSince(t0, 'onError').map((e) => e.detail),
      finalStatus: client.currentStatus,
      statuses: eventsSince(t0, 'onStatusChange').map((e) => e.detail),
    };
    client.disconnect();
    return out;
  },

  async connectionLimit() {
    // Short server: connections last 6 s. The server sends signaling error duration_limit_reached.
    const client = clientFor(SHORT_URL, API_KEY);
    const t0 = performance.now();
    await withTimeout(client.connect(handlers()), 20000, 'connect() to the short server');
    await waitFor(() => client.currentStatus !== 'connected', 15000, 'the connection limit', 100);
    await sleep(300);
    const out = {
      endedMs: Math.round(performance.now() - t0),
      finalStatus: client.currentStatus,
      onError: eventsSince(t0, 'onError').map((e) => e.detail),
      onDisconnected: eventsSince(t0, 'onDisconnected').length,
    };
    client.disconnect();
    return out;
  },

  async queue503() {
    // Short server, capacity 1: a second client polls /sessions/request (503) until the first leaves.
    const a = clientFor(SHORT_URL, API_KEY);
    await withTimeout(a.connect(), 20000, 'connect() A');
    const b = clientFor(SHORT_URL, API_KEY);
    const t0 = performance.now();
    const pending = withTimeout(b.connect(), 25000, 'connect() B (queued)');
    await sleep(2500);
    const bStatusWhileQueued = b.currentStatus;
    a.disconnect();
    await pending;
    const out = { bStatusWhileQueued, bConnectedAfterMs: Math.round(performance.now() - t0), bStatus: b.currentStatus };
    b.disconnect();
    return out;
  },

  async concurrentLimit() {
    // Five sessions held by this key (the per-key limit), then a sixth request: 429 CONCURRENT_LIMIT_REACHED.
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await withTimeout(new Odyssey({ apiKey: API_KEY }).createClientCredentials(), 10000, 'createClientCredentials()'));
    const client = new Odyssey({ apiKey: API_KEY });
    try {
      await withTimeout(client.connect(), 10000, 'connect() over the limit');
      client.disconnect();
      return { held: held.length, thrown: null };
    } catch (e) {
      return { held: held.length, thrown: e && e.name, code: e && e.code, details: e && e.details, message: e && e.message };
    }
  },



  async disconnect() {
    const client = state.client;
    const sessionId = client.currentSessionId;
    client.disconnect();
    await sleep(300);
    return { status: client.currentStatus, sessionId, streamIds: state.streamIds.slice(), statusEvents: events.filter((e) => e.kind === 'onStatusChange').slice(-3).map((e) => e.detail) };
  },

  async getRecording() {
    const client = new Odyssey({ apiKey: API_KEY });
    const id = state.streamIds[0];
    const rec = await withTimeout(client.getRecording(id), 15000, 'getRecording()');
    const out = { streamId: id, fields: Object.keys(rec).sort(), frame_count: rec.frame_count, duration_seconds: rec.duration_seconds };
    // The presigned URLs are fetched cross-origin, as an application's <video src> or fetch would.
    for (const name of ['video_url', 'events_url', 'thumbnail_url', 'preview_url']) {
      if (!rec[name]) { out[name] = null; continue; }
      try {
        const r = await withTimeout(fetch(rec[name]), 10000, `GET ${name}`);
        const body = await r.arrayBuffer();
        out[name] = { status: r.status, type: r.headers.get('content-type'), bytes: body.byteLength };
      } catch (e) {
        out[name] = { error: String(e && e.message || e) };
      }
    }
    if (rec.video_url) {
      const video = document.getElementById('recording');
      video.src = rec.video_url;
      try {
        await withTimeout(new Promise((res, rej) => { video.onloadedmetadata = res; video.onerror = () => rej(new Error(`media error ${video.error && video.error.code}: ${video.error && video.error.message}`)); }), 10000, 'recording metadata');
        out.playback = { videoWidth: video.videoWidth, videoHeight: video.videoHeight, duration: +video.duration.toFixed(2) };
      } catch (e) {
        out.playback = { error: String(e.message || e) };
      }
    }
    return out;
  },

  async listStreamRecordings() {
    const client = new Odyssey({ apiKey: API_KEY });
    const res = await withTimeout(client.listStreamRecordings({ limit: 10 }), 10000, 'listStreamRecordings()');
    return {
      total: res.total, limit: res.limit, offset: res.offset,
      recordings: res.recordings.map((r) => ({ stream_id: r.stream_id, width: r.width, height: r.height, duration_seconds: r.duration_seconds, ended: r.ended_at !== null })),
      ourStreams: state.streamIds,
    };
  },

  async simulate() {
    const client = new Odyssey({ apiKey: API_KEY });
    const script = [
      { timestamp_ms: 0, start: { prompt: 'A cat sleeping' } },
      { timestamp_ms: 1000, interact: { prompt: 'The cat wakes up' } },
      { timestamp_ms: 2000, end: {} },
    ];
    // The first job starts from an image (a Blob: the SDK resizes it and sends it as a data URL).
    const imageScript = [{ timestamp_ms: 0, start: { prompt: 'A cat sleeping', image: await makeImage(800, 600) } }, ...script.slice(1)];
    const t0 = performance.now();
    const job = await withTimeout(client.simulate({ script: imageScript, portrait: false }), 10000, 'simulate()');
    const active = await withTimeout(client.listSimulations({ active: true }), 10000, 'listSimulations({active})');
    // A second job, cancelled while the first one runs (one worker, real-time speed: it is still pending).
    const job2 = await withTimeout(client.simulate({ script, portrait: true }), 10000, 'simulate() #2');
    const cancelled = await withTimeout(client.cancelSimulation(job2.job_id), 10000, 'cancelSimulation()');
    let status;
    const seen = [];
    const deadline = performance.now() + 60000;
    while (performance.now() < deadline) {
      status = await withTimeout(client.getSimulateStatus(job.job_id), 10000, 'getSimulateStatus()');
      if (!seen.includes(status.status)) seen.push(status.status);
      if (['completed', 'failed', 'cancelled'].includes(status.status)) break;
      await sleep(250);
    }
    const list = await withTimeout(client.listSimulations({ limit: 10 }), 10000, 'listSimulations()');
    const stream = status.streams && status.streams[0];
    let video = null;
    if (stream && stream.video_url) {
      const r = await withTimeout(fetch(stream.video_url), 10000, 'GET simulation video_url');
      video = { status: r.status, bytes: (await r.arrayBuffer()).byteLength };
    }
    return {
      ms: Math.round(performance.now() - t0),
      submitted: job, statusesSeen: seen, final: status.status, error_message: status.error_message,
      detailFields: Object.keys(status).sort(),
      streams: (status.streams || []).map((s) => ({ stream_id: s.stream_id, frame_count: s.frame_count, duration_seconds: s.duration_seconds, script_index: s.script_index })),
      video,
      cancelled,
      list: { total: list.total, statuses: list.jobs.map((j) => j.status) },
      activeList: active.jobs.map((j) => j.status),
    };
  },

  async twoPhaseCredentials() {
    // A trusted side mints credentials with the API key; a key-less client connects with them.
    const backend = new Odyssey({ apiKey: API_KEY });
    const creds = await withTimeout(backend.createClientCredentials(), 10000, 'createClientCredentials()');
    const client = new Odyssey();
    const stream = await withTimeout(client.connectWithCredentials(creds, handlers()), 20000, 'connectWithCredentials()');
    const id = await withTimeout(client.startStream({ prompt: 'A fox', portrait: false }), 15000, 'startStream()');
    const video = await attachedVideo(stream, 'main');
    const v = await checkVideo(video, { width: 1280, height: 704, advanceS: 0.5 });
    await withTimeout(client.endStream(), 10000, 'endStream()');
    client.disconnect();
    return { sessionId: creds.sessionId, expiresIn: creds.expiresIn, capabilities: creds.capabilities, streamId: id, videoWidth: v.videoWidth, meanLuma: v.meanLuma };
  },

  async usageError() {
    const client = new Odyssey({ apiKey: params.get('limited') });
    try {
      await withTimeout(client.connect(), 10000, 'connect() with a monthly-limited key');
      client.disconnect();
      return { thrown: null };
    } catch (e) {
      return {
        thrown: e && e.name, message: e && e.message,
        isMonthly: e instanceof MonthlyLimitReachedError, isUsage: e instanceof OdysseyUsageError,
        code: e && e.code, status: client.currentStatus,
      };
    }
  },

  async badKeys() {
    const out = {};
    for (const [name, key] of [['unknown', 'ody_not_a_real_key'], ['suspended', params.get('suspended')], ['malformed', 'nope']]) {
      const client = new Odyssey({ apiKey: key });
      try {
        await withTimeout(client.connect(), 10000, `connect() with ${name} key`);
        client.disconnect();
        out[name] = 'connected?!';
      } catch (e) {
        out[name] = e && e.message;
      }
    }
    return out;
  },
};

window.interop = {
  ready: true,
  async run(name) {
    const t0 = performance.now();
    try {
      const result = await steps[name]();
      return { ok: true, ms: Math.round(performance.now() - t0), result };
    } catch (e) {
      return { ok: false, ms: Math.round(performance.now() - t0), error: String((e && e.stack) || e) };
    }
  },
  events: () => events.slice(),
};
