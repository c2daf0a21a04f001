// ANTHROPIC_MESSAGES against the official `@anthropic-ai/sdk`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { startEmulator, expectedText, wordCount, WORDS } from './emulator.mjs';

let emu;
let client;
const PROMPT = 'Tell the conformance suite a story';

before(async () => {
  emu = await startEmulator();
  client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: emu.base, maxRetries: 0 });
});
after(async () => emu && emu.stop());

test('messages.stream: every event, finalMessage text and usage', async () => {
  const want = await expectedText(emu.base, PROMPT);
  const stream = client.messages.stream({
    model: 'claude-sonnet-4-5',
    max_tokens: WORDS,
    messages: [{ role: 'user', content: PROMPT }],
  });
  const types = [];
  let text = '';
  stream.on('streamEvent', (event) => types.push(event.type));
  stream.on('text', (delta) => { text += delta; });
  const final = await stream.finalMessage();
  assert.equal(text, want);
  assert.equal(final.content[0].text, want);
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.output_tokens, WORDS);
  assert.equal(final.usage.input_tokens, wordCount(PROMPT));
  assert.deepEqual(types, [
    'message_start', 'content_block_start',
    ...Array(WORDS).fill('content_block_delta'),
    'content_block_stop', 'message_delta', 'message_stop',
  ]);
});

test('messages.create stream:true yields the raw events', async () => {
  const want = await expectedText(emu.base, PROMPT, 4);
  const stream = await client.messages.create({
    model: 'claude-sonnet-4-5',
    max_tokens: 4,
    messages: [{ role: 'user', content: PROMPT }],
    stream: true,
  });
  let text = '';
  let outputTokens = 0;
  for await (const event of stream) {
    if (event.type === 'content_block_delta') text += event.delta.text;
    if (event.type === 'message_delta') outputTokens = event.usage.output_tokens;
  }
  assert.equal(text, want);
  assert.equal(outputTokens, 4);
});

test('messages.create non-streaming', async () => {
  const want = await expectedText(emu.base, PROMPT, 9);
  const msg = await client.messages.create({
    model: 'claude-sonnet-4-5',
    max_tokens: 9,
    messages: [{ role: 'user', content: PROMPT }],
  });
  assert.equal(msg.type, 'message');
  assert.equal(msg.content[0].text, want);
  assert.equal(msg.usage.output_tokens, 9);
});

test('injected 429 is a RateLimitError', async () => {
  await assert.rejects(
    client.messages.create(
      { model: 'm', max_tokens: 3, messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-llmload-fault': '429' } }),
    (err) => {
      assert.ok(err instanceof Anthropic.RateLimitError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 429);
      assert.equal(err.headers.get('retry-after'), '1');
      return true;
    });
});

test('injected 500 is an InternalServerError', async () => {
  await assert.rejects(
    client.messages.create(
      { model: 'm', max_tokens: 3, messages: [{ role: 'user', content: 'x' }], stream: true },
      { headers: { 'x-llmload-fault': '500' } }),
    (err) => {
      assert.ok(err instanceof Anthropic.InternalServerError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 500);
      return true;
    });
});

test('injected error event surfaces as the stream APIError (overloaded_error)', async () => {
  const stream = client.messages.stream(
    { model: 'm', max_tokens: 6, messages: [{ role: 'user', content: 'x' }] },
    { headers: { 'x-llmload-fault': 'error_event' } });
  let text = '';
  stream.on('text', (delta) => { text += delta; });
  await assert.rejects(stream.finalMessage(), (err) => {
    assert.ok(err instanceof Anthropic.APIError, `got ${err?.constructor?.name}`);
    assert.match(String(err.message), /overloaded_error/);
    return true;
  });
  assert.equal(text.split(' ').length, 3);
});
