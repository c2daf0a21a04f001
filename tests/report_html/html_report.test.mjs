// The HTML report as a person sees it: `llmload local --report` writes it,
// headless Chromium opens it from disk, and the test checks what a reader
// would: every chart is there and drawn from data, nothing is fetched from
// anywhere, the console stays clean, it fits a laptop screen, and it prints.
// A screenshot and a PDF are left in LLMLOAD_REPORT_WORK.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const binDir = process.env.LLMLOAD_BIN_DIR;
const work = process.env.LLMLOAD_REPORT_WORK;
const require = createRequire(path.join(process.env.LLMLOAD_NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');

// Runs a command to its end (bounded), resolving with its exit code and output.
function run(cmd, args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

// Time charts (paths over the run's windows) and distributions (bars).
const TIME_CHARTS = ['ttft', 'itl', 'e2e', 'generator-cpu', 'generator-lag', 'active-sessions',
  'requests-per-sec', 'tokens-per-sec', 'errors'];
const DISTRIBUTIONS = ['dist-ttft', 'dist-itl', 'dist-e2e', 'dist-tpot'];

test('the HTML report opens in Chromium with every chart drawn from data', async () => {
  const report = path.join(work, 'report.html');
  const local = await run(path.join(binDir, 'llmload'), [
    'local', '--clients', '4', '--duration', '4', '--length', '10', '--delay', '0.01',
    '--workers', '2', '--progress-interval', '1', '--threshold', 'ttft:p99<5s',
    '--report', report, '--state-dir', path.join(work, 'state')], 120_000);
  assert.equal(local.code, 0, local.out);
  assert.ok(existsSync(report), local.out);

  const browser = await chromium.launch({
    executablePath: process.env.LLMLOAD_CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    // A laptop screen.
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    const url = pathToFileURL(report).href;
    const consoleErrors = [];
    const requests = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') {
        consoleErrors.push(`${msg.type()}: ${msg.text()}`);
      }
    });
    page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`));
    page.on('request', (req) => {
      if (req.url() !== url) {
        requests.push(req.url());
      }
    });
    // Anything but the report itself would be a fetch: refuse and record it.
    await context.route('**/*', (route) => {
      if (route.request().url() === url) {
        return route.continue();
      }
      requests.push(route.request().url());
      return route.abort();
    });

    const response = await page.goto(url, { waitUntil: 'load' });
    assert.ok(response === null || response.ok());
    await page.screenshot({ path: path.join(work, 'report.png'), fullPage: true });
    assert.ok(statSync(path.join(work, 'report.png')).size > 10_000);

    const charts = await page.evaluate(() => {
      const out = {};
      for (const svg of document.querySelectorAll('svg[data-chart]')) {
        const frame = svg.querySelector('rect.frame').getBBox();
        const paths = [...svg.querySelectorAll('path.series')].map((p) => {
          const box = p.getBBox();
          const d = p.getAttribute('d') || '';
          return { d, points: (d.match(/[ML]/g) || []).length, width: box.width, height: box.height,
            length: p.getTotalLength() };
        });
        const bars = [...svg.querySelectorAll('rect.bar')].map((r) => r.getBBox())
          .filter((b) => b.width > 0 && b.height > 0).length;
        out[svg.dataset.chart] = { points: Number(svg.dataset.points), frameWidth: frame.width,
          paths, bars, visible: svg.getBoundingClientRect().width > 200 };
      }
      return out;
    });
    for (const id of TIME_CHARTS) {
      const c = charts[id];
      assert.ok(c, `chart ${id} is missing; found ${Object.keys(charts)}`);
      assert.ok(c.visible, `chart ${id} is not laid out`);
      assert.ok(c.paths.length > 0, `chart ${id} has no series`);
      for (const p of c.paths) {
        // A line through the run's windows: several points spanning most of
        // the time axis, with a real length.
        assert.ok(p.points >= 3, `chart ${id}: a series of ${p.points} points: ${p.d}`);
        assert.ok(p.width > c.frameWidth * 0.4, `chart ${id}: a series spans ${p.width} of ${c.frameWidth}`);
        assert.ok(p.length > 0, `chart ${id}: an empty path`);
      }
    }
    // Latencies vary over a run: their lines are not flat.
    for (const id of ['ttft', 'itl', 'e2e', 'requests-per-sec', 'tokens-per-sec']) {
      assert.ok(charts[id].paths.some((p) => p.height > 0), `chart ${id}: every line is flat`);
    }
    for (const id of DISTRIBUTIONS) {
      const c = charts[id];
      assert.ok(c, `distribution ${id} is missing`);
      assert.ok(c.bars > 0, `distribution ${id} has no bars`);
    }

    // The story around the charts.
    const text = await page.evaluate(() => document.body.innerText);
    for (const s of ['Summary', 'Verdict', 'PASSED', 'ttft p99', 'Per worker', 'local-worker-0',
      'local-worker-1', 'Events', 'run COMPLETED', 'Run spec', 'lengthWords']) {
      assert.ok(text.includes(s), `the report does not say "${s}"`);
    }
    // Readable on a laptop screen: nothing runs off to the side.
    const overflow = await page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);

    // And on paper.
    await page.emulateMedia({ media: 'print' });
    await page.pdf({ path: path.join(work, 'report.pdf'), format: 'A4' });
    assert.ok(statSync(path.join(work, 'report.pdf')).size > 10_000);

    assert.deepEqual(consoleErrors, [], 'console errors');
    assert.deepEqual(requests, [], 'network requests');
    await context.close();
  } finally {
    await browser.close();
  }
  // The file is self-contained: no external reference at all.
  const html = readFileSync(report, 'utf8');
  assert.doesNotMatch(html, /<script|<link|<img|src=|@import|url\(/i);
});
