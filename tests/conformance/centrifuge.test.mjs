// CENTRIFUGO_EMULATOR against the official `centrifuge` (centrifuge-js)
// client, used exactly like the llm-emulator's TypeScript client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { startEmulator, WORDS } from './emulator.mjs';

let emu;

before(async () => { emu = await startEmulator(); });
after(async () => emu && emu.stop());

async function post(path, body) {
  const res = await fetch(`${emu.base}${path}`, {
    method: 'POST',
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.equal(res.status, 200, `${path} answered ${res.status}`);
  return res.json();
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

test('token from /api/sessions/create connects; every word of /api/run arrives, then done', async () => {
  const session = await post('/api/sessions/create');
  const channel = `session:${session.session_id}`;
  const centrifuge = new Centrifuge(`ws://127.0.0.1:${emu.port}/connection/websocket`, {
    token: session.token,
    websocket: WebSocket,
  });
  const tokens = [];
  const offsets = [];
  let onDone = () => {};
  centrifuge.on('publication', (ctx) => {
    assert.equal(ctx.channel, channel);
    offsets.push(ctx.offset);
    if (ctx.data.token) tokens.push(ctx.data.token);
    if (ctx.data.done) onDone();
  });
  const connected = new Promise((resolve) => centrifuge.once('connected', resolve));
  const subscribed = new Promise((resolve) => centrifuge.once('subscribed', resolve));
  centrifuge.connect();
  // The TS client also subscribes client-side; the server answers 105.
  const sub = centrifuge.newSubscription(channel);
  const unsubscribed = new Promise((resolve) => sub.once('unsubscribed', resolve));
  sub.subscribe();
  const ctx = await withTimeout(connected, 5000, 'connected');
  assert.equal(ctx.transport, 'websocket');
  assert.equal((await withTimeout(subscribed, 5000, 'server-side subscribed')).channel, channel);
  assert.equal((await withTimeout(unsubscribed, 5000, '105 unsubscribed')).code, 105);

  let lastOffset = 0;
  for (let cycle = 1; cycle <= 3; cycle++) {
    tokens.length = 0;
    offsets.length = 0;
    const done = new Promise((resolve) => { onDone = resolve; });
    const run = await post('/api/run', {
      session_id: session.session_id, question: `Question ${cycle} from client 0` });
    await withTimeout(done, 10000, `done of cycle ${cycle}`);
    assert.equal(tokens.join(' '), run.response);
    assert.equal(tokens.length, WORDS);
    assert.equal(offsets.length, WORDS + 1);
    for (const offset of offsets) {
      assert.equal(offset, lastOffset + 1);
      lastOffset = offset;
    }
  }
  const del = await fetch(`${emu.base}/api/sessions/${session.session_id}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  const disconnected = new Promise((resolve) => centrifuge.once('disconnected', resolve));
  centrifuge.disconnect();
  await withTimeout(disconnected, 5000, 'disconnected');
});

test('expired token: connect error 109 ends unauthorized', async () => {
  // Signed with the default secret, exp in 2023 (fixtures/centrifugo-error-token-expired.jsonl).
  const expired = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI5ZjJjNmExZS00YjdkLTRjMmEtOWUxNS0zZDhmMGI2YTdjMjEiLCJleHAiOjE3MDAwMDAwMDAsImNoYW5uZWxzIjpbInNlc3Npb246OWYyYzZhMWUtNGI3ZC00YzJhLTllMTUtM2Q4ZjBiNmE3YzIxIl19.SnswtJm-Tf1cCF5NXHQTmGT_nWtQxq2XrNy7vO8Z0FE';
  const centrifuge = new Centrifuge(`ws://127.0.0.1:${emu.port}/connection/websocket`, {
    token: expired, websocket: WebSocket });
  const disconnected = new Promise((resolve) => centrifuge.once('disconnected', resolve));
  centrifuge.connect();
  const ctx = await withTimeout(disconnected, 5000, 'disconnected');
  assert.equal(ctx.code, 1);  // unauthorized (SDK-local code)
});

test('bad signature: close 3500 invalid token, no reconnect', async () => {
  const session = await post('/api/sessions/create');
  const forged = session.token.slice(0, -4) + (session.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const centrifuge = new Centrifuge(`ws://127.0.0.1:${emu.port}/connection/websocket`, {
    token: forged, websocket: WebSocket });
  const disconnected = new Promise((resolve) => centrifuge.once('disconnected', resolve));
  centrifuge.connect();
  const ctx = await withTimeout(disconnected, 5000, 'disconnected');
  assert.equal(ctx.code, 3500);
  assert.equal(ctx.reason, 'invalid token');
});

test('a dropped socket reconnects with recover: the missed publications come back in order', async () => {
  const session = await post('/api/sessions/create');
  const channel = `session:${session.session_id}`;
  // Every socket the SDK opens, so the test can drop one the way a network
  // failure does (terminate: TCP gone, no close frame).
  const sockets = [];
  class TrackedWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  const centrifuge = new Centrifuge(`ws://127.0.0.1:${emu.port}/connection/websocket`, {
    token: session.token,
    websocket: TrackedWebSocket,
    minReconnectDelay: 100,
    maxReconnectDelay: 200,
  });
  const tokens = [];
  const offsets = [];
  let onDone = () => {};
  let onThird = () => {};
  centrifuge.on('publication', (ctx) => {
    offsets.push(ctx.offset);
    if (ctx.data.token) tokens.push(ctx.data.token);
    if (tokens.length === 3 && ctx.data.token) onThird();
    if (ctx.data.done) onDone();
  });
  const subscribedEvents = [];
  centrifuge.on('subscribed', (ctx) => subscribedEvents.push(ctx));
  const connected = new Promise((resolve) => centrifuge.once('connected', resolve));
  centrifuge.connect();
  await withTimeout(connected, 5000, 'connected');
  const third = new Promise((resolve) => { onThird = resolve; });
  const done = new Promise((resolve) => { onDone = resolve; });
  // 20 words 50 ms apart: the socket drops after the third, and the SDK is
  // back within a few hundred ms, while the answer goes on.
  const run = await post('/api/run', {
    session_id: session.session_id, question: 'q', length_words: 20, token_delay_seconds: 0.05 });
  await withTimeout(third, 5000, 'third token');
  const reconnected = new Promise((resolve) => centrifuge.once('connected', resolve));
  sockets[0].terminate();
  await withTimeout(reconnected, 5000, 'reconnected');
  await withTimeout(done, 10000, 'done');
  assert.equal(sockets.length, 2);
  // The second subscribed event is the recovery's.
  assert.equal(subscribedEvents.length, 2);
  assert.equal(subscribedEvents[1].channel, channel);
  assert.equal(subscribedEvents[1].wasRecovering, true);
  assert.equal(subscribedEvents[1].recovered, true);
  // Every word once, in order, offsets 1..21 without a gap or a repeat.
  assert.equal(tokens.join(' '), run.response);
  assert.deepEqual(offsets, Array.from({ length: 21 }, (_, i) => i + 1));
  const disconnected = new Promise((resolve) => centrifuge.once('disconnected', resolve));
  centrifuge.disconnect();
  await withTimeout(disconnected, 5000, 'disconnected');
});
