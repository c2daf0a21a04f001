// Starts build/bin/llmload-emulator on a free loopback port (--port=0; the
// bound port is read from its "Emulator listening." log line) and stops it.
import { spawn } from 'node:child_process';

export const WORDS = 12;

export async function startEmulator(extraArgs = []) {
  const bin = process.env.LLMLOAD_EMULATOR_BIN;
  if (!bin) {
    throw new Error('LLMLOAD_EMULATOR_BIN is not set (path to build/bin/llmload-emulator)');
  }
  const args = ['--host=127.0.0.1', '--port=0', '--threads=2', `--length_words=${WORDS}`,
    '--token_delay_seconds=0.002', '--seed=7', ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`emulator did not start in 10 s:\n${log}`)), 10000);
    child.stderr.on('data', (chunk) => {
      log += chunk.toString();
      const m = log.match(/Emulator listening\..*?port=(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`emulator exited with ${code}:\n${log}`));
    });
  });
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    async stop() {
      child.removeAllListeners('exit');
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// The text the emulator generates for (seed, prompt, length), from its
// plain HTTP_JSON endpoint: every protocol produces the same words.
export async function expectedText(base, prompt, words = WORDS) {
  const res = await fetch(`${base}/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: words }),
  });
  if (res.status !== 200) {
    throw new Error(`/v1/generate answered ${res.status}`);
  }
  const body = await res.json();
  return body.text;
}

export function wordCount(s) {
  return s.split(/\s+/).filter(Boolean).length;
}
