// `countersign listen --forward-to <url>`: real webhooks on a machine with no public URL. It opens
// the token's listen session, follows its server-sent-events stream, forwards each delivery to the
// local URL with exactly the headers and body a subscription would get, and reports the local
// answer back, which becomes the attempt in the delivery log (a local 500, or a refused connection,
// is a failed attempt and is retried like any other).
//
// It never silently stops. The server pings every 10 s and this end sends a heartbeat as often; a
// stream silent for 30 s (a laptop that slept, a network that changed), a heartbeat the server does
// not recognise, or a stream that ends all reconnect, with backoff, saying so. What was published
// meanwhile waits in the queue and arrives after the reconnect. ^C ends the session, and the server
// cancels its deliveries not yet made.
import { request } from 'undici';
import { EXCERPT_LIMIT } from '../delivery/sender.js';
import { describeSendError } from '../domain/classify.js';
import { EVENT_TYPES, isEventType } from '../domain/events.js';
import { ApiCallError, type ApiConnection, ApiUsageError, callApi } from './api-client.js';

export interface ListenOptions {
  forwardTo: string;
  events?: string;
  json?: boolean;
}

interface Session {
  id: string;
  event_types: string[];
  signing_secret: string;
}

interface DeliveryMessage {
  delivery_id: string;
  attempt: number;
  event_id: string;
  event_type: string;
  headers: Record<string, string>;
  body: string;
}

/** Timings, in ms. */
export const LISTEN_TIMING = {
  heartbeatMs: 10_000,
  /** No bytes on the stream for this long (the server pings every 10 s): the stream is dead. */
  silenceMs: 30_000,
  forwardTimeoutMs: 30_000,
  backoffMs: [1_000, 2_000, 5_000, 10_000, 30_000],
};

export function parseForwardTo(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ApiUsageError(
      `--forward-to must be an http(s) URL such as http://localhost:3000/webhooks, got "${text}"`,
    );
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw new ApiUsageError(
      `--forward-to must be an http(s) URL such as http://localhost:3000/webhooks, got "${text}"`,
    );
  }
  return url.toString();
}

export function parseEvents(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const types = text
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  if (types.length === 0) throw new ApiUsageError(`--events takes a comma-separated list of ${EVENT_TYPES.join(', ')}`);
  for (const t of types) {
    if (!isEventType(t))
      throw new ApiUsageError(`unknown event type "${t}" in --events (use ${EVENT_TYPES.join(', ')})`);
  }
  return [...new Set(types)];
}

const say = (line: string) => process.stderr.write(`${line}\n`);

function localTime(at: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${p(at.getMonth() + 1)}-${p(at.getDate())} ${p(at.getHours())}:${p(at.getMinutes())}:${p(at.getSeconds())}`;
}

interface Forwarded {
  durationMs: number;
  statusCode: number | null;
  headers?: Record<string, string>;
  excerpt?: string;
  error?: string;
}

/** POSTs one delivery to the local URL, byte for byte, and reads at most 4 KiB of its answer. */
async function forward(url: string, d: DeliveryMessage): Promise<Forwarded> {
  const started = performance.now();
  const timeoutMs = LISTEN_TIMING.forwardTimeoutMs;
  try {
    const answer = await request(url, {
      method: 'POST',
      headers: d.headers,
      body: d.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of answer.body) {
      const buf = chunk as Buffer;
      if (size < EXCERPT_LIMIT) chunks.push(buf.subarray(0, EXCERPT_LIMIT - size));
      size += buf.length;
      if (size >= EXCERPT_LIMIT) break;
    }
    if (size >= EXCERPT_LIMIT) answer.body.destroy();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    return {
      durationMs: Math.round(performance.now() - started),
      statusCode: answer.statusCode,
      headers,
      excerpt: Buffer.concat(chunks).toString('utf8'),
    };
  } catch (err) {
    // In the words the dispatcher uses in the delivery log: connection refused, timeout, …
    return { durationMs: Math.round(performance.now() - started), statusCode: null, error: describeSendError(err) };
  }
}

/** Splits a server-sent-events byte stream into (event, data) pairs. */
class EventStreamParser {
  private buffer = '';
  private readonly decoder = new TextDecoder();

  push(bytes: Uint8Array): { event: string; data: string }[] {
    this.buffer += this.decoder.decode(bytes, { stream: true }).replace(/\r\n?/g, '\n');
    const out: { event: string; data: string }[] = [];
    for (let end = this.buffer.indexOf('\n\n'); end !== -1; end = this.buffer.indexOf('\n\n')) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) out.push({ event, data: data.join('\n') });
    }
    return out;
  }
}

/** Ends `listen` for good (the session was taken over or ended elsewhere, the token refused). */
class ListenStop extends Error {}

/** Runs until ^C (exit 0) or until listening cannot go on (exit 1); never stops silently. */
export async function listen(connection: ApiConnection, options: ListenOptions): Promise<number> {
  const forwardTo = parseForwardTo(options.forwardTo);
  const eventTypes = parseEvents(options.events);
  let session: Session | undefined;
  let stopping = false;
  let current: AbortController | undefined;
  let failures = 0;
  let lost = false;
  let wake: (() => void) | undefined;

  const stop = new Promise<number>((resolve) => {
    let asked = 0;
    const onSignal = () => {
      asked++;
      if (asked > 1) process.exit(130);
      stopping = true;
      wake?.();
      void (async () => {
        let code = 0;
        if (session) {
          try {
            const ended = await callApi<{ cancelled: number }>(
              connection,
              'DELETE',
              `/v1/listen/sessions/${encodeURIComponent(session.id)}`,
            );
            say(
              `listen session ended; ${ended.cancelled} deliver${ended.cancelled === 1 ? 'y' : 'ies'} not yet made cancelled`,
            );
          } catch (err) {
            say(`countersign: could not end the listen session: ${(err as Error).message}`);
            code = 1;
          }
        }
        current?.abort();
        resolve(code);
      })();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  const report = async (d: DeliveryMessage, f: Forwarded, sessionId: string) => {
    try {
      await callApi(connection, 'POST', `/v1/listen/sessions/${encodeURIComponent(sessionId)}/answers`, {
        body: {
          delivery_id: d.delivery_id,
          attempt: d.attempt,
          forwarded_to: forwardTo,
          duration_ms: f.durationMs,
          status_code: f.statusCode,
          ...(f.statusCode === null
            ? { error: f.error ?? 'no answer' }
            : { response_headers: f.headers ?? {}, response_excerpt: f.excerpt ?? '' }),
        },
      });
    } catch (err) {
      // 409: the stream this delivery came on has closed; the server sends it again on the next one.
      if (!(err instanceof ApiCallError && err.status === 409) && !stopping) {
        say(
          `countersign: could not report the answer to ${d.delivery_id}: ${(err as Error).message}; it will come again`,
        );
      }
    }
  };

  const handle = (d: DeliveryMessage, sessionId: string) => {
    void forward(forwardTo, d).then(async (f) => {
      if (stopping) return;
      const outcome = f.statusCode === null ? (f.error ?? 'no answer') : String(f.statusCode);
      const line = options.json
        ? JSON.stringify({
            at: new Date().toISOString(),
            delivery_id: d.delivery_id,
            attempt: d.attempt,
            event_id: d.event_id,
            event_type: d.event_type,
            status_code: f.statusCode,
            error: f.error ?? null,
            duration_ms: f.durationMs,
          })
        : `${localTime(new Date())}  ${d.event_type}  ${d.event_id}  -> ${outcome} (${f.durationMs} ms)${d.attempt > 1 ? `  attempt ${d.attempt}` : ''}`;
      process.stdout.write(`${line}\n`);
      await report(d, f, sessionId);
    });
  };

  /** One stream, from opening the session to the stream's end; resolves why it ended. */
  const follow = async (): Promise<string> => {
    const opened = await callApi<Session>(connection, 'POST', '/v1/listen/sessions', {
      body: eventTypes ? { event_types: eventTypes } : {},
    });
    if (stopping) return 'stopping';
    const first = session === undefined;
    if (session && session.signing_secret !== opened.signing_secret) {
      say(`the signing secret changed: it is now ${opened.signing_secret}`);
    }
    session = opened;
    const controller = new AbortController();
    current = controller;
    let lastByteAt = Date.now();
    let why = 'the stream ended';
    let fatal: ListenStop | undefined;
    const abort = (reason: string) => {
      why = reason;
      controller.abort();
    };
    const watch = setInterval(() => {
      if (Date.now() - lastByteAt > LISTEN_TIMING.silenceMs) {
        abort(`nothing heard from the server for ${Math.round((Date.now() - lastByteAt) / 1000)} s`);
      }
    }, 1_000);
    const beat = setInterval(() => {
      callApi(connection, 'POST', `/v1/listen/sessions/${encodeURIComponent(opened.id)}/heartbeat`).catch(
        (err: unknown) => {
          if (!(err instanceof ApiCallError)) return;
          // The server holds no stream of ours although our socket looks open: start again.
          if (err.status === 409 || err.status === 404) abort('the server no longer knows this stream');
          // The token was revoked or has expired: that will not mend itself.
          if (err.status === 401 || err.status === 403) {
            fatal = new ListenStop(err.message);
            controller.abort();
          }
        },
      );
    }, LISTEN_TIMING.heartbeatMs);
    try {
      // The stream of the address this CLI was given (the server may not know how it is reached).
      const streamUrl = `${connection.url}/v1/listen/sessions/${encodeURIComponent(opened.id)}/stream`;
      const response = await fetch(streamUrl, {
        headers: { authorization: `Bearer ${connection.token}`, accept: 'text/event-stream' },
        signal: controller.signal,
      });
      if (!response.ok || !response.body) {
        const text = await response.text().catch(() => '');
        let message = `the stream answered ${response.status}`;
        try {
          message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
        } catch {}
        if (response.status === 401 || response.status === 403) throw new ListenStop(message);
        return message;
      }
      const parser = new EventStreamParser();
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          if (fatal) throw fatal;
          return why;
        }
        lastByteAt = Date.now();
        for (const { event, data } of parser.push(value)) {
          const payload = JSON.parse(data) as Record<string, unknown>;
          switch (event) {
            case 'ready':
              if (first) {
                say(`Ready! Your webhook signing secret is ${opened.signing_secret} (^C to quit)`);
                say(`forwarding ${opened.event_types.join(', ')} to ${forwardTo}`);
              } else if (lost) {
                say('reconnected; deliveries made while disconnected follow');
              }
              lost = false;
              failures = 0;
              break;
            case 'delivery':
              handle(payload as unknown as DeliveryMessage, opened.id);
              break;
            case 'replaced':
              throw new ListenStop(
                'another countersign listen with this token took the session over; stopping this one',
              );
            case 'revoked':
              throw new ListenStop('your API token was revoked or has expired; stopping');
            case 'ended':
              if (stopping) return 'stopping';
              throw new ListenStop('the listen session was ended (DELETE /v1/listen/sessions/…); stopping');
            case 'closing':
              why = 'the server is shutting down';
              break;
            default:
              break; // ping, and anything newer servers send
          }
        }
      }
    } catch (err) {
      if (err instanceof ListenStop) throw err;
      if (fatal) throw fatal;
      if (controller.signal.aborted) return why;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return cause?.code ?? cause?.message ?? (err as Error).message;
    } finally {
      clearInterval(watch);
      clearInterval(beat);
      controller.abort();
    }
  };

  const run = async (): Promise<number> => {
    while (!stopping) {
      let why: string;
      try {
        why = await follow();
      } catch (err) {
        if (err instanceof ListenStop) {
          say(`countersign: ${err.message}`);
          return 1;
        }
        // Never connected (a wrong address, no server), or refused (a revoked token): that will not
        // mend itself. Once it has connected, a server that goes away is waited for.
        if (err instanceof ApiCallError && (session === undefined || (err.status >= 400 && err.status < 500)))
          throw err;
        why = (err as Error).message.replace(/ \(is countersign running there\?.*$/, '');
      }
      if (stopping) break;
      const wait = LISTEN_TIMING.backoffMs[Math.min(failures, LISTEN_TIMING.backoffMs.length - 1)] as number;
      failures++;
      say(
        lost
          ? `still disconnected (${why}); trying again in ${Math.round(wait / 1000)} s`
          : `lost the connection to ${connection.url} (${why}); reconnecting in ${Math.round(wait / 1000)} s`,
      );
      lost = true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
    return stop;
  };

  return Promise.race([run(), stop]);
}
