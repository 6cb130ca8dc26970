#!/usr/bin/env node
// load_in_speedscope.js FILE [SCREENSHOT.png]
//
// Loads FILE in the real speedscope app (the npm package's dist/release) in headless Chromium and
// checks that speedscope imported it as a speedscope file and drew it:
//   - the page title becomes "<file's name field> - speedscope" (speedscope sets it after import;
//     a file it could not read as speedscope JSON gets another title, an alert or an error page),
//   - the first profile's name is shown and a canvas is present,
//   - no "Something went wrong", no alert, no console error, no uncaught exception, no warning
//     of the trace importer about slices that do not nest,
//   - the Time Order chart holds several colours, and the Left Heavy flame chart (merged stacks,
//     wide bars whatever the profile's timing) really holds coloured pixels; SHOT.png is the
//     Left Heavy view.
// Everything is served from 127.0.0.1 on a free port; the browser makes no other connection.
// Prints one line and exits 0 (loaded and drawn) or 1.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const {chromium} = require('playwright-core');

const CHROMIUM = process.env.APROF_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 60000;
const RELEASE_DIR = path.join(path.dirname(require.resolve('speedscope/package.json')),
                              'dist', 'release');
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm',
  '.png': 'image/png', '.ico': 'image/x-icon', '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8',
};

function serve(profilePath) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    let file = null;
    if (url.pathname.startsWith('/speedscope/')) {
      const rel = path.normalize(decodeURIComponent(url.pathname.slice('/speedscope/'.length)));
      if (!rel.startsWith('..') && !path.isAbsolute(rel)) file = path.join(RELEASE_DIR, rel);
    } else if (url.pathname === '/profile/' + path.basename(profilePath)) {
      file = profilePath;
    }
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, {'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream',
                        'Cache-Control': 'no-store'});
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

// Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium's screenshots are).
function decodePng(buf) {
  let pos = 8, width = 0, height = 0, colorType = 0, bitDepth = 0, interlace = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8];
      colorType = data[9];
      interlace = data[12];
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    pos += 12 + len;
  }
  const channels = {2: 3, 6: 4}[colorType];
  if (bitDepth !== 8 || !channels || interlace) throw new Error('unsupported PNG layout');
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels] : 0;
      const b = y > 0 ? px[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? px[(y - 1) * stride + x - channels] : 0;
      let v = line[x];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      px[y * stride + x] = v & 255;
    }
  }
  return {width, height, channels, px};
}

// Share of clearly coloured (not grey/white/black) pixels, and how many distinct colours.
function colourStats(img, top, bottom) {
  let coloured = 0, total = 0;
  const colours = new Set();
  for (let y = top; y < bottom; y++) {
    for (let x = 0; x < img.width; x++) {
      const i = (y * img.width + x) * img.channels;
      const r = img.px[i], g = img.px[i + 1], b = img.px[i + 2];
      total++;
      // tinted, not grey: speedscope's palest bars differ by about 40 between channels
      if (Math.max(r, g, b) - Math.min(r, g, b) > 12) {
        coloured++;
        colours.add((r >> 3) << 10 | (g >> 3) << 5 | (b >> 3));
      }
    }
  }
  return {share: total ? coloured / total : 0, distinct: colours.size};
}

// The name speedscope gives the profile it opens first from a trace: the thread_name of the
// (pid, tid) that sorts first among those with complete events.
function firstTraceThread(events) {
  const names = new Map();
  const keys = new Set();
  for (const e of events) {
    if (e.ph === 'M' && e.name === 'thread_name') names.set(`${e.pid}:${e.tid}`, e.args.name);
    if (e.ph === 'X' || e.ph === 'B') keys.add(`${e.pid}:${e.tid}`);
  }
  const num = k => k.split(':').map(Number);
  const sorted = [...keys].sort((a, b) => num(a)[0] - num(b)[0] || num(a)[1] - num(b)[1]);
  return sorted.length ? {name: names.get(sorted[0]) || sorted[0]} : null;
}

async function main() {
  const [file, screenshot] = process.argv.slice(2);
  if (!file || process.argv.length > 4) {
    console.log('usage: load_in_speedscope.js FILE [SCREENSHOT.png]');
    process.exit(1);
  }
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  // A Chrome trace (aprof record -f trace) is imported through speedscope's Trace Event Format
  // importer: one profile per thread that has complete events, named after its thread_name
  // metadata, and the page titled after the file.
  const trace = Array.isArray(doc.traceEvents);
  const wantTitle = trace ? `${path.basename(file)} - speedscope` : `${doc.name} - speedscope`;
  const first = trace ? firstTraceThread(doc.traceEvents) : doc.profiles[doc.activeProfileIndex || 0];
  if (!first) throw new Error('the file has no profile to show');

  const server = await serve(path.resolve(file));
  const port = server.address().port;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aprof-chromium-'));
  const problems = [];
  let context;
  try {
    // A persistent context on a fresh directory is playwright's way to pass --user-data-dir.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: {width: 1280, height: 800},
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: TIMEOUT_MS,
    });
    const page = context.pages()[0] || await context.newPage();
    page.on('console', msg => {
      if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
      // the trace importer's complaints about slices that do not nest (it then draws them
      // nested wrongly rather than fail)
      if (msg.type() === 'warning' && /Tried to end|still open at end of profile/.test(msg.text()))
        problems.push(`speedscope: ${msg.text().slice(0, 200)}`);
    });
    page.on('pageerror', err => problems.push(`uncaught exception: ${err.message}`));
    page.on('dialog', async dialog => {
      problems.push(`alert: ${dialog.message()}`);
      await dialog.dismiss().catch(() => {});
    });
    page.on('requestfailed', req => problems.push(`request failed: ${req.url()}`));
    page.on('response', res => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()} for ${res.url()}`);
    });

    const base = `http://127.0.0.1:${port}`;
    const profileURL = `${base}/profile/${encodeURIComponent(path.basename(file))}`;
    await page.goto(`${base}/speedscope/index.html#profileURL=${encodeURIComponent(profileURL)}`,
                    {waitUntil: 'load', timeout: TIMEOUT_MS});
    try {
      await page.waitForFunction(
        ({title, name}) => document.title === title && document.querySelector('canvas') &&
          document.body.innerText.includes(name),
        {title: wantTitle, name: first.name}, {timeout: TIMEOUT_MS, polling: 200});
    } catch (e) {
      const title = await page.title();
      const text = (await page.evaluate(() => document.body.innerText)).replace(/\s+/g, ' ');
      problems.push(`not drawn: title ${JSON.stringify(title)}, page text ` +
                    `${JSON.stringify(text.slice(0, 160))}`);
    }
    // Let it paint, then look at the result.
    await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.waitForTimeout(500);
    const text = await page.evaluate(() => document.body.innerText);
    if (/Something went wrong/.test(text)) problems.push('speedscope shows "Something went wrong"');
    // The flame chart fills the page below the toolbar (about 24 px) and above the detail panel.
    const timeOrder = colourStats(decodePng(await page.screenshot({fullPage: false})), 40,
                                  Math.floor(800 * 0.6));
    // Time Order draws each sample at its width in time: a profile whose functions alternate
    // every few milliseconds is thin slivers there. Left Heavy (key 2) merges identical stacks
    // into wide bars, so "is the chart really drawn" is judged there.
    await page.keyboard.press('2');
    await page.evaluate(() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.waitForTimeout(300);
    const png = await page.screenshot({fullPage: false});
    if (screenshot) fs.writeFileSync(screenshot, png);
    const img = decodePng(png);
    const stats = colourStats(img, 40, Math.floor(img.height * 0.6));
    if (timeOrder.distinct < 4)
      problems.push(`time-order chart looks empty: ${timeOrder.distinct} colours`);
    if (stats.share < 0.02 || stats.distinct < 8) // an undrawn chart has none
      problems.push(`left-heavy flame chart looks empty: ${(stats.share * 100).toFixed(1)}% ` +
                    `coloured pixels, ${stats.distinct} colours`);
    if (problems.length === 0)
      console.log(`LOADED ${file}: "${first.name}" drawn in speedscope, left heavy ` +
                  `${(stats.share * 100).toFixed(0)}% of the chart coloured, ${stats.distinct} ` +
                  `colours (time order ${(timeOrder.share * 100).toFixed(1)}%, ` +
                  `${timeOrder.distinct} colours)`);
  } catch (e) {
    problems.push(`${e.message.split('\n')[0]}`);
  } finally {
    if (context) await context.close().catch(() => {});
    server.close();
    fs.rmSync(userDataDir, {recursive: true, force: true});
  }
  if (problems.length) {
    console.log(`FAILED ${file}: ${problems[0]}` +
                (problems.length > 1 ? ` (+${problems.length - 1} more)` : ''));
    process.exit(1);
  }
  process.exit(0);
}

main().catch(e => {
  console.log(`FAILED: ${e.message.split('\n')[0]}`);
  process.exit(1);
});
