// OPENAI_CHAT against the official `openai` SDK.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startEmulator, expectedText, wordCount, WORDS } from './emulator.mjs';

let emu;
let client;
const PROMPT = 'Say hello to the conformance suite';

before(async () => {
  emu = await startEmulator();
  client = new OpenAI({ apiKey: 'sk-test', baseURL: `${emu.base}/v1`, maxRetries: 0 });
});
after(async () => emu && emu.stop());

test('stream: every delta, finish_reason stop, usage chunk', async () => {
  const want = await expectedText(emu.base, PROMPT);
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: PROMPT }],
    max_tokens: WORDS,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let contentChunks = 0;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.content) {
        text += choice.delta.content;
        contentChunks += 1;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(text, want);
  assert.equal(contentChunks, WORDS);
  assert.equal(finish, 'stop');
  assert.equal(usage.completion_tokens, WORDS);
  assert.equal(usage.prompt_tokens, wordCount(PROMPT));
  assert.equal(usage.total_tokens, WORDS + wordCount(PROMPT));
});

test('stream helper: finalChatCompletion', async () => {
  const want = await expectedText(emu.base, PROMPT);
  const runner = client.chat.completions.stream({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: PROMPT }],
    max_tokens: WORDS,
  });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, want);
});

test('non-streaming: text and usage', async () => {
  const want = await expectedText(emu.base, PROMPT, 7);
  const completion = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: PROMPT }],
    max_completion_tokens: 7,
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.content, want);
  assert.equal(completion.choices[0].finish_reason, 'stop');
  assert.equal(completion.usage.completion_tokens, 7);
});

test('x-llmload-length-words and x-llmload-token-delay-ms are honoured', async () => {
  const started = performance.now();
  const stream = await client.chat.completions.create(
    { model: 'm', messages: [{ role: 'user', content: 'timing' }], stream: true },
    { headers: { 'x-llmload-length-words': '5', 'x-llmload-token-delay-ms': '40' } });
  let deltas = 0;
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) deltas += 1;
  }
  const elapsed = performance.now() - started;
  assert.equal(deltas, 5);
  assert.ok(elapsed >= 4 * 40 - 5, `5 tokens 40 ms apart took only ${elapsed} ms`);
});

test('injected 429 is a RateLimitError with the retry-after header', async () => {
  await assert.rejects(
    client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-llmload-fault': '429' } }),
    (err) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 429);
      assert.equal(err.code, 'rate_limit_exceeded');
      assert.equal(err.headers.get('retry-after'), '1');
      return true;
    });
});

test('injected 500 is an InternalServerError', async () => {
  await assert.rejects(
    client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true },
      { headers: { 'x-llmload-fault': '500' } }),
    (err) => {
      assert.ok(err instanceof OpenAI.InternalServerError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 500);
      return true;
    });
});

test('injected mid-stream error surfaces as the stream APIError', async () => {
  const stream = await client.chat.completions.create(
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 6 },
    { headers: { 'x-llmload-fault': 'error_event' } });
  let deltas = 0;
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) deltas += 1;
      }
    })(),
    (err) => {
      assert.ok(err instanceof OpenAI.APIError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, undefined);
      assert.match(err.message, /server had an error/);
      return true;
    });
  assert.equal(deltas, 3);
});

test('--seed makes injected fault counts and positions reproducible', async () => {
  async function outcomes() {
    const e = await startEmulator(['--fault_http_429=0.25', '--fault_http_500=0.15', '--seed=11']);
    try {
      const c = new OpenAI({ apiKey: 'k', baseURL: `${e.base}/v1`, maxRetries: 0 });
      const seen = [];
      for (let i = 0; i < 40; i++) {
        try {
          await c.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'q' }],
            max_tokens: 2 });
          seen.push('ok');
        } catch (err) {
          seen.push(String(err.status));
        }
      }
      return seen;
    } finally {
      await e.stop();
    }
  }
  const first = await outcomes();
  const second = await outcomes();
  assert.deepEqual(second, first);
  const count = (s) => first.filter((x) => x === s).length;
  assert.ok(count('429') > 0 && count('500') > 0 && count('ok') > 0, first.join(','));
  assert.equal(count('429') + count('500') + count('ok'), 40);
});
