#!/usr/bin/env node
// check_report.js REPORT.html [SCREENSHOT.png] [--sections]
//
// Opens an aprof HTML report (record -f html, diff --html) in headless Chromium from a file://
// URL with every network request refused, and prints one JSON line of what the page shows:
//   {"ok", "problems": [...], "load_ms", "title", "stalls_rows": [[cells...]], "flame_colours",
//    "search_status", "zoom_status", "loops", "task_cards", "timeline_rows", "facts": {...}}
// problems: console errors, uncaught exceptions, any request (the report must be offline),
// the page not finishing (body[data-ready]). With SCREENSHOT, a full-page screenshot; with
// --sections, one more per section (SCREENSHOT-stalls.png, ...).
// Exit status 0 when there is no problem, 1 otherwise.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const {chromium} = require('playwright-core');

const CHROMIUM = process.env.APROF_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT_MS = 60000;

async function main() {
  const args = process.argv.slice(2);
  const sections = args.includes('--sections');
  const [file, shot] = args.filter(a => a !== '--sections');
  if (!file) {
    console.log('usage: check_report.js REPORT.html [SCREENSHOT.png] [--sections]');
    process.exit(1);
  }
  const out = {ok: false, problems: []};
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aprof-report-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, viewport: {width: 1400, height: 900},
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      timeout: TIMEOUT_MS,
    });
    const page = context.pages()[0] || await context.newPage();
    const url = 'file://' + path.resolve(file);
    await page.route('**/*', route => {
      if (route.request().url() === url) return route.continue();
      out.problems.push(`request: ${route.request().url()}`);
      return route.abort();
    });
    page.on('console', msg => { if (msg.type() === 'error') out.problems.push(`console error: ${msg.text()}`); });
    page.on('pageerror', err => out.problems.push(`uncaught exception: ${err.message}`));
    const t0 = Date.now();
    await page.goto(url, {waitUntil: 'load', timeout: TIMEOUT_MS});
    try {
      await page.waitForFunction(() => document.body.dataset.ready === '1', null, {timeout: TIMEOUT_MS});
    } catch (e) {
      out.problems.push('the page never finished drawing (body[data-ready])');
    }
    out.load_ms = Date.now() - t0;
    out.title = await page.title();
    const colours = () => page.evaluate(() => {
      const c = document.getElementById('flame');
      const g = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < g.length; i += 4 * 7) seen.add((g[i] >> 4) << 8 | (g[i + 1] >> 4) << 4 | g[i + 2] >> 4);
      return seen.size;
    });
    out.flame_colours = await colours();
    out.stalls_rows = await page.evaluate(() => [...document.querySelectorAll('#stall-table tr')].slice(1)
      .map(tr => [...tr.children].map(td => td.textContent)));
    out.loops = await page.evaluate(() => [...document.querySelectorAll('#loop-list h3')].map(h => h.textContent));
    out.task_cards = await page.evaluate(() => [...document.querySelectorAll('#task-cards .card')].map(c => c.textContent));
    out.timeline_rows = await page.evaluate(() => document.getElementById('timeline').height);
    out.facts = await page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#facts-table tr')]
      .map(tr => [tr.children[0].textContent, tr.children[1].textContent])));
    out.flame_title = await page.evaluate(() => document.getElementById('flame-title').textContent);
    if (shot) await page.screenshot({path: shot, fullPage: true});
    if (sections && shot) {
      await page.evaluate(() => document.querySelector('nav').style.position = 'static');
      for (const id of ['flames', 'loops', 'tasks']) {
        const el = await page.$('#' + id);
        if (el && await el.isVisible()) await el.screenshot({path: shot.replace(/\.png$/, `-${id}.png`)});
      }
    }
    // interactions: the first stall group's stack, a search, a zoom into the widest frame
    const firstGroup = await page.$('#stall-table tr.pick');
    if (firstGroup) {
      await firstGroup.click();
      out.stall_stack = await page.evaluate(() => document.getElementById('stall-stack').textContent.split('\n').slice(0, 3));
      if (sections && shot) { /* the stalls, with the first line's stack open */
        await page.evaluate(() => document.querySelector('nav').style.position = 'static');
        await (await page.$('#stalls')).screenshot({path: shot.replace(/\.png$/, '-stalls.png')});
      }
    }
    await page.fill('#search', out.search_term = process.env.APROF_REPORT_SEARCH || 'select');
    out.search_status = await page.evaluate(() => document.getElementById('flame-status').textContent);
    await page.fill('#search', '');
    const box = await page.$('#flame');
    const bb = await box.boundingBox();
    await page.mouse.click(bb.x + 40, bb.y + 18 * 2 + 9);
    out.zoom_status = await page.evaluate(() => document.getElementById('flame-status').textContent);
    out.ok = out.problems.length === 0;
  } catch (e) {
    out.problems.push(e.message.split('\n')[0]);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, {recursive: true, force: true});
  }
  console.log(JSON.stringify(out));
  process.exit(out.problems.length ? 1 : 0);
}

main().catch(e => { console.log(JSON.stringify({ok: false, problems: [e.message]})); process.exit(1); });
