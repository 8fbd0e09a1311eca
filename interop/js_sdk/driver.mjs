// Drives the published JavaScript SDK (@odysseyml/odyssey) in headless Chromium
// against a LocalOdyssey, step by step, and prints a PASS/FAIL table.
//
//   node driver.mjs [--python PY] [--chromium PATH] [--build-dir DIR] [--json OUT] [--only a,b] [--loops N] [--max-seconds S]
//
// Exit status: 0 all steps passed, 1 a step failed, 2 the harness itself failed.
// Every wait is bounded; the whole run is bounded by --max-seconds (default 240).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, mkdir, writeFile, copyFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import puppeteer from 'puppeteer-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const BUILD = path.resolve(arg('build-dir', path.join(HERE, 'build')));
const PYTHON = arg('python', process.env.PYTHON || 'python3');
const CHROMIUM = arg('chromium', process.env.CHROMIUM || '/usr/bin/chromium');
const JSON_OUT = arg('json', path.join(BUILD, 'results.json'));
const ONLY = arg('only', '') ? arg('only', '').split(',') : null;
const MAX_SECONDS = Number(arg('max-seconds', '240'));
const STEP_TIMEOUT_MS = 90000;

const t0 = Date.now();
const since = () => ((Date.now() - t0) / 1000).toFixed(1);
const log = (...a) => console.error(`[${since()}s]`, ...a);

// ---------------------------------------------------------------------------------------
// The checks each step's result must pass (besides not throwing). Each returns a list of
// failed expectations; `needs` skips a step whose prerequisite failed.

const approx = (a, b, tol) => Math.abs(a - b) <= tol;
const expect = (fails, cond, text) => { if (!cond) fails.push(text); };

function videoChecks(r, w, h) {
  const f = [];
  expect(f, r.videoWidth === w && r.videoHeight === h, `video ${r.videoWidth}x${r.videoHeight}, want ${w}x${h}`);
  expect(f, r.advancedS > 0, 'currentTime did not advance');
  expect(f, r.nonBlackShare > 0.5, `picture mostly black (non-black share ${r.nonBlackShare}, mean luma ${r.meanLuma})`);
  return f;
}

const STEPS = [
  { name: 'connectLoop', check: (r) => {
    const f = [];
    const raced = r.runs.filter((x) => x.statusAtResolve !== 'connected');
    expect(f, raced.length === 0, `warn: ${raced.length}/${r.runs.length} connect() resolved before status 'connected' (SDK race; startStream: ${raced.map((x) => x.startError).find(Boolean)})`);
    const lost = r.runs.filter((x) => x.statusAtResolve === 'connected' && x.startError);
    expect(f, lost.length === 0, `${lost.length}/${r.runs.length} startStream() right after connect() failed: ${lost.map((x) => x.startError).find(Boolean)}`);
    return f;
  } },
  { name: 'connect', check: (r) => {
    const f = [];
    expect(f, r.status === 'connected', `warn: connect() resolved with status '${r.status}' (SDK race: the data channel opened before connectionstatechange; 'connected' followed)`);
    expect(f, r.videoTracks === 1, `${r.videoTracks} video tracks`);
    expect(f, r.audioTracks === 0, `${r.audioTracks} audio tracks`);
    return f;
  } },
  { name: 'idleVideo', needs: 'connect', check: (r) => videoChecks(r, 1280, 704) },
  { name: 'startStream', needs: 'connect', check: (r) => {
    const f = [];
    expect(f, typeof r.streamId === 'string' && r.streamId.length > 0, `stream id ${r.streamId}`);
    expect(f, r.onStreamStarted.includes(r.streamId), 'onStreamStarted not called with the id');
    expect(f, typeof r.lastAppliedPrompt === 'string' && r.lastAppliedPrompt.includes('A cat'), `lastAppliedPrompt ${r.lastAppliedPrompt}`);
    return f;
  } },
  { name: 'streamVideo', needs: 'startStream', check: (r) => {
    const f = videoChecks(r, 1280, 704);
    expect(f, r.presentedFps >= 8, `only ${r.presentedFps} frames/s presented`);
    return f;
  } },
  { name: 'interact', needs: 'startStream', check: (r) => {
    const f = [];
    expect(f, typeof r.applied === 'string' && r.applied.includes('The cat sleeps'), `ack prompt ${r.applied}`);
    expect(f, r.onInteractAcknowledged.length === 1, `onInteractAcknowledged called ${r.onInteractAcknowledged.length}x`);
    return f;
  } },
  { name: 'endStream', needs: 'startStream', check: (r) => {
    const f = [];
    expect(f, r.onStreamEnded === 1, `onStreamEnded called ${r.onStreamEnded}x`);
    expect(f, r.status === 'connected', `status ${r.status} after endStream`);
    return f;
  } },
  { name: 'portraitDefault', needs: 'connect', check: (r) => videoChecks(r, 704, 1280) },
  { name: 'imageToVideo', needs: 'connect', check: (r) => videoChecks(r, 1280, 704) },
  { name: 'broadcastStart', needs: 'connect', check: (r) => {
    const f = [];
    expect(f, /^https?:\/\//.test(r.webrtcUrl), `webrtcUrl ${r.webrtcUrl}`);
    expect(f, r.tokenLength > 0, 'empty spectator token');
    return f;
  } },
  { name: 'spectator', needs: 'broadcastStart', server: 'spectators', check: (r, s) => {
    const f = videoChecks(r, 1280, 704);
    expect(f, r.connectionState === 'connected', `spectator connectionState ${r.connectionState}`);
    expect(f, s.spectators === 1, `server counts ${s.spectators} spectators`);
    return f;
  } },
  { name: 'spectator2', needs: 'spectator', server: 'spectators', check: (r, s) => {
    const f = videoChecks(r, 1280, 704);
    expect(f, s.spectators === 2, `server counts ${s.spectators} spectators`);
    return f;
  } },
  { name: 'hlsPlaylist', needs: 'broadcastStart', check: (r) => {
    const f = [];
    expect(f, r.status === 200 && r.firstLine === '#EXTM3U', `HLS ${r.status} ${r.firstLine}`);
    return f;
  } },
  { name: 'spectatorDisconnect', needs: 'spectator', server: 'spectators', settleMs: 1000, check: (r, s) => {
    const f = [];
    expect(f, s.spectators === 1, `server counts ${s.spectators} spectators after one WHEP DELETE (want 1)`);
    return f;
  } },
  { name: 'broadcastEnd', needs: 'broadcastStart', server: 'spectators', check: (r, s) => {
    const f = [];
    expect(f, s.spectators === 0, `server counts ${s.spectators} spectators after the end`);
    // Informational: Chrome sees the server's close only when ICE consent fails (~15-20 s); a FAIL only if never.
    expect(f, r.spectatorGoneMs === null || r.spectatorGoneMs >= 0,
      `remaining spectator did not notice the end within 40 s (state ${r.spectatorState})`);
    return f;
  } },
  { name: 'keepalive', needs: 'connect', server: 'sessions', check: (r, s) => {
    const f = [];
    expect(f, r.status === 'connected' && r.pcState === 'connected', `after 12 s: status ${r.status}, peer ${r.pcState}`);
    expect(f, r.advancedS >= 10, `video advanced only ${r.advancedS} s in 12 s`);
    return f;
  } },
  { name: 'bigPrompt', needs: 'connect', check: (r) => {
    const f = [];
    expect(f, /invalid_request/.test(r.startError || '') && /under \d+ characters/.test(r.startError || ''), `the over-long start gave ${r.startError}`);
    expect(f, typeof r.streamId === 'string' && r.status === 'connected', `next start: stream ${r.streamId}, status ${r.status}`);
    return f;
  } },
  { name: 'bypassDenied', needs: 'connect', check: (r) => {
    const f = [];
    expect(f, /permission_denied|bypass/i.test(r.startError || ''), `startStream(bypass) gave ${r.startError}`);
    expect(f, /403/.test(r.simError || ''), `simulate(bypass) gave ${r.simError}`);
    expect(f, r.status === 'connected', `status ${r.status}`);
    return f;
  } },
  { name: 'disconnect', needs: 'connect', server: 'sessions', settleMs: 1500, check: (r, s) => {
    const f = [];
    expect(f, r.status === 'disconnected', `status ${r.status}`);
    const mine = s.sessions.find((x) => x.session_id === r.sessionId);
    expect(f, mine && !mine.held && !mine.connected, `server session ${JSON.stringify(mine && { held: mine.held, connected: mine.connected })}`);
    const seen = mine ? mine.streams.map((x) => x.stream_id) : [];
    expect(f, r.streamIds.every((id) => seen.includes(id)), `server lacks streams the SDK started`);
    expect(f, seen.length === r.streamIds.length, `server ran ${seen.length} streams, the SDK saw ${r.streamIds.length} start`);
    expect(f, mine && mine.streams.every((x) => x.ended), 'a stream still running on the server');
    return f;
  } },
  { name: 'getRecording', needs: 'startStream', check: (r) => {
    const f = [];
    expect(f, r.video_url && r.video_url.status === 200 && r.video_url.bytes > 0, `video_url ${JSON.stringify(r.video_url)}`);
    expect(f, r.playback && r.playback.videoWidth === 1280 && r.playback.videoHeight === 704, `playback ${JSON.stringify(r.playback)}`);
    for (const k of ['events_url', 'thumbnail_url', 'preview_url']) {
      expect(f, r[k] === null || (r[k].status === 200), `${k} ${JSON.stringify(r[k])}`);
    }
    return f;
  } },
  { name: 'listStreamRecordings', needs: 'startStream', check: (r) => {
    const f = [];
    const ids = r.recordings.map((x) => x.stream_id);
    for (const id of r.ourStreams) expect(f, ids.includes(id), `stream ${id.slice(0, 8)} not listed`);
    const first = r.recordings.find((x) => x.stream_id === r.ourStreams[0]);
    expect(f, first && first.width === 1280 && first.height === 704, `first stream listed as ${first && first.width}x${first && first.height}`);
    expect(f, r.limit === 10 && r.offset === 0, `limit/offset ${r.limit}/${r.offset}`);
    return f;
  } },
  { name: 'simulate', check: (r) => {
    const f = [];
    expect(f, r.final === 'completed', `job ended ${r.final} (${r.error_message})`);
    expect(f, r.streams.length === 1 && r.video && r.video.status === 200 && r.video.bytes > 0, `streams ${JSON.stringify(r.streams)} video ${JSON.stringify(r.video)}`);
    expect(f, r.cancelled && r.cancelled.status === 'cancelled', `cancel ${JSON.stringify(r.cancelled)}`);
    expect(f, r.list.total >= 2, `list total ${r.list.total}`);
    return f;
  } },
  { name: 'twoPhaseCredentials', check: (r) => {
    const f = [];
    expect(f, r.videoWidth === 1280, `video width ${r.videoWidth}`);
    expect(f, r.capabilities && r.capabilities.image_to_video === true, `capabilities ${JSON.stringify(r.capabilities)}`);
    return f;
  } },
  { name: 'streamLimit', check: (r) => {
    const f = [];
    expect(f, r.streamErrors.some((e) => e.startsWith('session_timeout')), `stream errors ${JSON.stringify(r.streamErrors)}`);
    expect(f, r.errorMs < 6000, `session_timeout after ${r.errorMs} ms`);
    expect(f, r.finalStatus === 'disconnected', `final status ${r.finalStatus}`);
    return f;
  } },
  { name: 'connectionLimit', check: (r) => {
    const f = [];
    expect(f, r.finalStatus === 'failed' && r.onError.some((e) => /maximum allowed duration/.test(e)), `status ${r.finalStatus}, errors ${JSON.stringify(r.onError)}`);
    expect(f, r.endedMs >= 5000 && r.endedMs < 9000, `ended after ${r.endedMs} ms (limit 6 s)`);
    return f;
  } },
  { name: 'queue503', check: (r) => {
    const f = [];
    expect(f, r.bStatusWhileQueued === 'authenticating', `B while queued: ${r.bStatusWhileQueued}`);
    expect(f, r.bStatus === 'connected', `B after A left: ${r.bStatus}`);
    return f;
  } },
  { name: 'usageError', check: (r) => {
    const f = [];
    expect(f, r.isMonthly && r.code === 'MONTHLY_LIMIT_REACHED', `thrown ${r.thrown} code ${r.code}: ${r.message}`);
    return f;
  } },
  { name: 'badKeys', check: (r) => {
    const f = [];
    expect(f, r.unknown === 'Invalid API key', `unknown key: ${r.unknown}`);
    expect(f, r.suspended === 'API key access denied', `suspended key: ${r.suspended}`);
    expect(f, /Invalid API key format/.test(r.malformed || ''), `malformed key: ${r.malformed}`);
    return f;
  } },
  { name: 'concurrentLimit', check: (r) => {
    const f = [];
    expect(f, r.thrown === 'ConcurrentLimitReachedError' && r.code === 'CONCURRENT_LIMIT_REACHED', `thrown ${r.thrown} ${r.code}: ${r.message}`);
    return f;
  } },
];

// ---------------------------------------------------------------------------------------

async function startServer() {
  const args = [path.join(HERE, 'serve_local.py'), '--max-seconds', String(MAX_SECONDS + 30), '--log', path.join(BUILD, 'server.log')];
  const child = spawn(PYTHON, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr = [];
  child.stderr.on('data', (d) => stderr.push(d.toString()));
  const lines = createInterface({ input: child.stdout });
  const queue = [];
  const waiters = [];
  lines.on('line', (line) => (waiters.length ? waiters.shift()(line) : queue.push(line)));
  const nextLine = (ms) => new Promise((resolve, reject) => {
    if (queue.length) return resolve(queue.shift());
    const timer = setTimeout(() => reject(new Error(`local server: no answer in ${ms} ms\n${stderr.join('')}`)), ms);
    waiters.push((line) => { clearTimeout(timer); resolve(line); });
  });
  child.on('exit', (code) => { if (code) log(`local server exited ${code}`); });
  const info = JSON.parse(await nextLine(30000));
  return {
    info,
    stderr,
    async ask(command) {
      child.stdin.write(`${command}\n`);
      return JSON.parse(await nextLine(10000));
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.stdin.write('quit\n');
      await Promise.race([new Promise((r) => child.on('exit', r)), new Promise((r) => setTimeout(r, 15000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

async function build() {
  await mkdir(BUILD, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(HERE, 'page.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'chrome120',
    outfile: path.join(BUILD, 'app.bundle.js'),
    external: ['ws'],  // the SDK imports 'ws' only where there is no WebSocket (Node)
    logLevel: 'warning',
  });
  await esbuild.stop();  // its service process would keep node alive
  await copyFile(path.join(HERE, 'page.html'), path.join(BUILD, 'index.html'));
}

// A static server on its own origin, so every SDK call to the API is cross-origin (CORS).
function startStatic() {
  const types = { '.html': 'text/html', '.js': 'text/javascript' };
  const server = createServer(async (req, res) => {
    const name = new URL(req.url, 'http://x').pathname.replace(/^\/+/, '') || 'index.html';
    try {
      const body = await readFile(path.join(BUILD, path.basename(name)));
      res.writeHead(200, { 'Content-Type': types[path.extname(name)] || 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function table(rows) {
  const w = Math.max(...rows.map((r) => r.name.length));
  const out = [];
  out.push(`${'step'.padEnd(w)}  result  seconds  detail`);
  for (const r of rows) {
    out.push(`${r.name.padEnd(w)}  ${r.verdict.padEnd(6)}  ${(r.ms / 1000).toFixed(1).padStart(7)}  ${r.detail}`);
  }
  return out.join('\n');
}

async function main() {
  const hardStop = setTimeout(() => { log(`run exceeded ${MAX_SECONDS}s; aborting`); process.exit(2); }, MAX_SECONDS * 1000);
  hardStop.unref();
  let server, statik, browser;
  const rows = [];
  const consoleLines = [];
  try {
    await build();
    log('bundle built');
    server = await startServer();
    log(`local server at ${server.info.url} (odyssey_sync from ${server.info.package})`);
    statik = await startStatic();
    const origin = `http://127.0.0.1:${statik.address().port}`;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: false,  // --headless=new is passed explicitly below
      protocolTimeout: STEP_TIMEOUT_MS + 30000,
      args: [
        '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required',
        '--no-first-run', '--no-default-browser-check', '--disable-dev-shm-usage',
      ],
    });
    log(`chromium ${await browser.version()}`);
    const page = await browser.newPage();
    page.on('console', (m) => consoleLines.push(`[${since()}s] console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`[${since()}s] pageerror: ${e.message}`));
    page.on('response', (r) => {
      if (r.status() >= 400) consoleLines.push(`[${since()}s] response ${r.status()}: ${r.request().method()} ${r.url().replace(/token=[^&]+/, 'token=…')}`);
    });
    page.on('requestfailed', (r) => consoleLines.push(`[${since()}s] requestfailed: ${r.method()} ${r.url().replace(/token=[^&]+/, 'token=…')} ${r.failure() && r.failure().errorText}`));
    const q = new URLSearchParams({
      loops: arg('loops', '10'), short: server.info.short_url,
      api: server.info.url, key: server.info.api_key, limited: server.info.limited_key, suspended: server.info.suspended_key,
    });
    await page.goto(`${origin}/index.html?${q}`, { waitUntil: 'load', timeout: 20000 });
    await page.waitForFunction('window.interop && window.interop.ready', { timeout: 10000 });

    const passed = new Set();
    for (const step of STEPS) {
      if (ONLY && !ONLY.includes(step.name)) continue;
      if (step.needs && !passed.has(step.needs) && (!ONLY || ONLY.includes(step.needs))) {
        rows.push({ name: step.name, verdict: 'SKIP', ms: 0, detail: `needs ${step.needs}` });
        continue;
      }
      log(`step ${step.name}`);
      const out = await Promise.race([
        page.evaluate((n) => window.interop.run(n), step.name),
        new Promise((r) => setTimeout(() => r({ ok: false, ms: STEP_TIMEOUT_MS, error: 'driver timeout' }), STEP_TIMEOUT_MS)),
      ]);
      let fails = [];
      let serverView = null;
      if (out.ok) {
        if (step.server) {
          await new Promise((r) => setTimeout(r, step.settleMs || 0));
          serverView = await server.ask(step.server);
        }
        try { fails = step.check(out.result, serverView); } catch (e) { fails = [`check threw: ${e.message}`]; }
      }
      const hard = fails.filter((x) => !x.startsWith('warn: '));
      const verdict = !out.ok || hard.length ? 'FAIL' : fails.length ? 'WARN' : 'PASS';
      if (verdict !== 'FAIL') passed.add(step.name);
      const detail = !out.ok ? out.error.split('\n')[0] : fails.length ? fails.join('; ') : summary(step.name, out.result);
      rows.push({ name: step.name, verdict, ms: out.ms, detail, result: out.result, error: out.error, server: serverView });
    }
    const events = await page.evaluate(() => window.interop.events());
    await writeFile(JSON_OUT, JSON.stringify({ server: server.info.url, rows, events, console: consoleLines }, null, 2));
  } catch (e) {
    log(`harness failure: ${e.stack || e}`);
    if (server) console.error(server.stderr.join('').slice(-4000));
    process.exitCode = 2;
  } finally {
    if (browser) await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10000))]).catch(() => {});
    if (statik) statik.close();
    if (server) await server.stop();
  }
  if (consoleLines.length) {
    console.log('--- browser console (last 40 lines) ---');
    console.log(consoleLines.slice(-40).join('\n'));
  }
  if (rows.length) {
    console.log('--- JS SDK @odysseyml/odyssey against LocalOdyssey ---');
    console.log(table(rows));
    const n = (v) => rows.filter((r) => r.verdict === v).length;
    console.log(`${n('PASS') + n('WARN')} passed, ${n('FAIL')} failed, ${n('SKIP')} skipped`);
    console.log(`(${n('WARN')} with warnings; ${since()} s; details in ${JSON_OUT}, server log in ${path.join(BUILD, 'server.log')})`);
    if (process.exitCode !== 2) process.exitCode = n('FAIL') || n('SKIP') ? 1 : 0;
  }
}

function summary(name, r) {
  switch (name) {
    case 'connectLoop': return `${r.runs.length} connects, median ${r.runs.map((x) => x.resolvedMs).sort((a, b) => a - b)[r.runs.length >> 1]} ms`;
    case 'connect': return `${r.ms} ms, session ${r.sessionId.slice(0, 8)}`;
    case 'idleVideo': case 'streamVideo': case 'spectator': case 'spectator2': case 'portraitDefault': case 'imageToVideo':
      return `${r.videoWidth}x${r.videoHeight}, +${r.advancedS}s, ${r.presentedFps} fps, luma ${r.meanLuma}${r.rtp ? `, ${r.rtp.codec}` : ''}`;
    case 'startStream': return `${r.ms} ms, applied "${r.lastAppliedPrompt}"`;
    case 'interact': return `${r.ms} ms, ack "${r.applied}"`;
    case 'endStream': return `${r.ms} ms`;
    case 'broadcastStart': return `${r.ms} ms, hls ${r.hlsUrl ? 'yes' : 'no'}`;
    case 'hlsPlaylist': return `${r.contentType}, ${r.segments} segments`;
    case 'getRecording': return `${r.frame_count} frames, ${r.duration_seconds} s, playback ${JSON.stringify(r.playback)}`;
    case 'listStreamRecordings': return `total ${r.total}`;
    case 'simulate': return `${r.ms} ms, ${r.statusesSeen.join('>')}, ${r.streams[0] && r.streams[0].frame_count} frames`;
    case 'broadcastEnd': return `${r.ms} ms; remaining spectator saw the end after ${r.spectatorGoneMs} ms`;
    case 'keepalive': return `+${r.advancedS} s of video in 12 s`;
    case 'bigPrompt': return `${r.promptChars}-char prompt over the socket (channel limit ${r.maxDataChannelMessageSize}) refused; next start ran`;
    case 'streamLimit': return `session_timeout after ${r.errorMs} ms, then ${r.finalStatus}`;
    case 'connectionLimit': return `${r.finalStatus} after ${r.endedMs} ms`;
    case 'queue503': return `B connected ${r.bConnectedAfterMs} ms after asking`;
    case 'concurrentLimit': return `${r.thrown} ${JSON.stringify(r.details)}`;
    case 'usageError': return `${r.thrown} ${r.code}`;
    default: return '';
  }
}

main().finally(() => process.exit(process.exitCode ?? 0));
