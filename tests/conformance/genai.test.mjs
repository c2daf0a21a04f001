// GEMINI against the official `@google/genai` SDK.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GoogleGenAI, ApiError } from '@google/genai';
import { startEmulator, expectedText, wordCount, WORDS } from './emulator.mjs';

let emu;
const PROMPT = 'Explain the conformance suite';

function client(headers = {}) {
  return new GoogleGenAI({ apiKey: 'test-key', httpOptions: { baseUrl: emu.base, headers } });
}

before(async () => { emu = await startEmulator(); });
after(async () => emu && emu.stop());

test('generateContentStream: every chunk, STOP, usage', async () => {
  const want = await expectedText(emu.base, PROMPT);
  const stream = await client().models.generateContentStream({
    model: 'gemini-2.0-flash',
    contents: PROMPT,
    config: { maxOutputTokens: WORDS },
  });
  let text = '';
  let chunks = 0;
  let last = null;
  for await (const chunk of stream) {
    text += chunk.text;
    chunks += 1;
    last = chunk;
  }
  assert.equal(text, want);
  assert.equal(chunks, WORDS);
  assert.equal(last.candidates[0].finishReason, 'STOP');
  assert.equal(last.usageMetadata.candidatesTokenCount, WORDS);
  assert.equal(last.usageMetadata.promptTokenCount, wordCount(PROMPT));
});

test('generateContent (non-streaming)', async () => {
  const want = await expectedText(emu.base, PROMPT, 6);
  const res = await client().models.generateContent({
    model: 'gemini-2.0-flash',
    contents: PROMPT,
    config: { maxOutputTokens: 6 },
  });
  assert.equal(res.text, want);
  assert.equal(res.usageMetadata.candidatesTokenCount, 6);
});

test('LF framing (--gemini_sse_crlf=false) streams the same text', async () => {
  const lf = await startEmulator(['--gemini_sse_crlf=false']);
  try {
    const want = await expectedText(lf.base, PROMPT);
    const ai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: lf.base } });
    let text = '';
    for await (const chunk of await ai.models.generateContentStream({
      model: 'gemini-2.0-flash', contents: PROMPT, config: { maxOutputTokens: WORDS } })) {
      text += chunk.text;
    }
    assert.equal(text, want);
  } finally {
    await lf.stop();
  }
});

for (const [fault, status] of [['429', 429], ['500', 500]]) {
  test(`injected ${fault} is an ApiError with status ${status}`, async () => {
    await assert.rejects(
      client({ 'x-llmload-fault': fault }).models.generateContentStream({
        model: 'gemini-2.0-flash', contents: 'x' }),
      (err) => {
        assert.ok(err instanceof ApiError, `got ${err?.constructor?.name}`);
        assert.equal(err.status, status);
        return true;
      });
  });
}

test('injected mid-stream error surfaces as ApiError 503 after the first chunks', async () => {
  const stream = await client({ 'x-llmload-fault': 'error_event' }).models.generateContentStream({
    model: 'gemini-2.0-flash', contents: 'x', config: { maxOutputTokens: 6 } });
  let chunks = 0;
  await assert.rejects(
    (async () => { for await (const c of stream) { if (c.text) chunks += 1; } })(),
    (err) => {
      assert.ok(err instanceof ApiError, `got ${err?.constructor?.name}`);
      assert.equal(err.status, 503);
      return true;
    });
  assert.equal(chunks, 3);
});
