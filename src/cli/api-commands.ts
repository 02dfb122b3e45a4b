// The commands that work through a running countersign's HTTP API, for operators and scripts:
// login, trigger, listen, subscriptions, events, deliveries, replay and erasure. Tables for people,
// the API's own JSON with --json; exit 1 with the API's message when it refuses, 2 for a usage error.
// The documents and audit commands (document-commands.ts) are built with the helpers exported here.
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { type Command, Option } from 'commander';
import { DELIVERY_STATUSES } from '../domain/delivery-status.js';
import { EVENT_TYPES, isEventType, isSubscribableEventType, SUBSCRIBABLE_EVENT_TYPES } from '../domain/events.js';
import { parseDuration } from '../domain/time.js';
import {
  ApiCallError,
  type ApiConnection,
  ApiUsageError,
  callApi,
  configPath,
  DEFAULT_API_URL,
  parseApiUrl,
  type Query,
  resolveConnection,
  saveLogin,
} from './api-client.js';
import { type ListenOptions, listen } from './listen.js';
import { formatFacts, formatTable, printJson } from './table.js';

export type Done = (code: number) => void;

export interface CommonOptions {
  apiUrl?: string;
  json?: boolean;
}

const apiUrlOption = () =>
  new Option('--api-url <url>', `countersign's address (COUNTERSIGN_API_URL, the saved login, or ${DEFAULT_API_URL})`);
const jsonOption = () => new Option('--json', "print the API's JSON answer, for scripts");

/** Adds --api-url and --json, and runs `work` with the connection; its result is the exit code. */
export function apiAction<A extends unknown[]>(
  command: Command,
  done: Done,
  work: (connection: ApiConnection, options: CommonOptions & Record<string, unknown>, ...args: A) => Promise<void>,
): Command {
  command.addOption(apiUrlOption()).addOption(jsonOption());
  return command.action(async (...received: unknown[]) => {
    // commander passes the arguments, then the options object, then the command.
    const args = received.slice(0, -2) as A;
    const options = received[received.length - 2] as CommonOptions & Record<string, unknown>;
    const connection = resolveConnection(options.apiUrl);
    await work(connection, options, ...args);
    done(0);
  });
}

export function positiveInteger(name: string, max: number) {
  return (text: string): number => {
    const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
    if (!(n >= 1 && n <= max)) throw new ApiUsageError(`${name} must be an integer from 1 to ${max}, got "${text}"`);
    return n;
  };
}

function eventType(text: string): string {
  if (!isEventType(text)) throw new ApiUsageError(`unknown event type "${text}" (use ${EVENT_TYPES.join(', ')})`);
  return text;
}

/** What a subscription may take: the document events and the operational ones. */
function subscribableType(text: string): string {
  if (!isSubscribableEventType(text)) {
    throw new ApiUsageError(`unknown event type "${text}" (use ${SUBSCRIBABLE_EVENT_TYPES.join(', ')})`);
  }
  return text;
}

/**
 * --rate-limit: deliveries a second (1 to 10000), or `none` to lift the limit. `none` stays a
 * string: commander turns an option value of null into ''.
 */
function rateLimit(text: string): number | 'none' {
  return text === 'none' ? 'none' : positiveInteger('--rate-limit', 10_000)(text);
}

function ordering(text: string): string {
  if (text !== 'none' && text !== 'document') {
    throw new ApiUsageError(`--ordering takes none or document, got "${text}"`);
  }
  return text;
}

/** An RFC 3339 time, or a duration back from now (`2h` is two hours ago). */
function timeOption(name: string) {
  return (text: string): string => {
    const back = parseDuration(text);
    if (back !== undefined && /[a-z]$/i.test(text)) return new Date(Date.now() - back).toISOString();
    if (!Number.isNaN(Date.parse(text)) && /^\d{4}-\d\d-\d\d/.test(text)) return text;
    throw new ApiUsageError(`${name} must be an RFC 3339 time or a duration back from now (2h, 7d), got "${text}"`);
  };
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const shortTime = (iso: string | null | undefined) => (iso ? iso.replace(/\.\d+Z$/, 'Z') : '');

// ---- the API's shapes, as far as the commands read them -----------------------------------------

interface Subscription {
  id: string;
  target_url: string;
  event_types: string[];
  status: string;
  has_secret_token: boolean;
  disabled_reason: string | null;
  rate_limit_per_second: number | null;
  ordering: string;
  created_at: string;
  signing_secret?: string;
  last_delivery?: {
    id: string;
    status: string;
    last_attempt: { started_at: string; status_code: number | null; error: string | null } | null;
  } | null;
}
interface EventView {
  id: string;
  event: string;
  timestamp: string;
  created_at: string;
  deliveries: number;
  test: boolean;
  data: Record<string, unknown>;
}
interface Attempt {
  number: number;
  trigger: string;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
}
interface DeliveryView {
  id: string;
  event_id: string;
  subscription_id: string | null;
  target: string;
  target_url?: string | null;
  status: string;
  attempt_count: number;
  created_at: string;
  next_attempt_at: string | null;
  delivered_at: string | null;
  last_attempt?: Attempt | null;
  attempts?: Attempt[];
}

const outcome = (a: { status_code: number | null; error: string | null } | null | undefined) =>
  !a ? '' : a.status_code !== null ? String(a.status_code) : (a.error ?? '');

function printSubscriptions(subscriptions: Subscription[]): void {
  process.stdout.write(
    formatTable(
      ['ID', 'STATUS', 'EVENT TYPES', 'LAST DELIVERY', 'TARGET URL'],
      subscriptions.map((s) => [
        s.id,
        s.status,
        s.event_types.join(','),
        s.last_delivery
          ? `${s.last_delivery.status}${s.last_delivery.last_attempt ? ` (${outcome(s.last_delivery.last_attempt)})` : ''}`
          : '',
        s.target_url,
      ]),
    ),
  );
}

function printDeliveries(deliveries: DeliveryView[]): void {
  process.stdout.write(
    formatTable(
      ['ID', 'STATUS', 'ATTEMPTS', 'LAST', 'CREATED', 'EVENT', 'TARGET'],
      deliveries.map((d) => [
        d.id,
        d.status,
        d.attempt_count,
        outcome(d.last_attempt),
        shortTime(d.created_at),
        d.event_id,
        d.target_url ?? d.target,
      ]),
    ),
  );
}

/**
 * A cli-progress bar (on stderr, drawn only on a terminal). Imported when a command draws one, so
 * `serve`, which parses its arguments through the same program, never loads it.
 */
async function progressBar(format: string) {
  const { SingleBar } = await import('cli-progress');
  return new SingleBar({ format, hideCursor: true });
}

// ---- login ------------------------------------------------------------------------------------

/** A line from stdin: typed without echo at a terminal, or piped in (scripts). */
async function readToken(): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) {
    let text = '';
    for await (const chunk of input) text += String(chunk);
    return text.trim();
  }
  const rl = createInterface({ input, output: process.stderr, terminal: true });
  const silence = rl as unknown as { _writeToOutput: (s: string) => void };
  process.stderr.write('API token (input hidden): ');
  silence._writeToOutput = () => {};
  const line = await new Promise<string>((resolve) => rl.question('', resolve));
  rl.close();
  process.stderr.write('\n');
  return line.trim();
}

// ---- the commands -----------------------------------------------------------------------------

/** A command that only holds others: without one of them it is a usage error. */
export function commandGroup(
  program: Command,
  name: string,
  about: string,
  addHelp: (parent: Command) => void,
): Command {
  const group = program
    .command(name)
    .description(about)
    .action(() => {
      const names = group.commands.map((c) => c.name()).filter((n) => n !== 'help');
      throw new ApiUsageError(`${name} needs a command: ${names.join(', ')}; see "countersign ${name} --help"`);
    });
  addHelp(group);
  return group;
}

export function addApiCommands(program: Command, done: Done, addHelp: (parent: Command) => void): void {
  program
    .command('login')
    .description(
      `save the API address and a token for the API commands (${configPath().replace(process.env.HOME ?? '~', '~')}, mode 0600)`,
    )
    .addOption(apiUrlOption())
    .addHelpText('after', '\nThe token is read from standard input (typed without echo, or piped); never from a flag.')
    .action(async (options: { apiUrl?: string }) => {
      const url = parseApiUrl(options.apiUrl ?? process.env.COUNTERSIGN_API_URL ?? DEFAULT_API_URL, '--api-url');
      const token = await readToken();
      if (!token) throw new ApiUsageError('no token given on standard input');
      const me = await callApi<{ account: { name: string }; token: { id: string; scopes: string[] } }>(
        { url, token },
        'GET',
        '/v1/me',
      );
      const path = saveLogin({ api_url: url, token });
      process.stdout.write(
        `logged in to ${url} as account "${me.account.name}" (token ${me.token.id}, scopes ${me.token.scopes.join(',')}); saved to ${path}\n`,
      );
      done(0);
    });

  apiAction(
    program
      .command('trigger')
      .description('publish a realistic sample event of a type through the API')
      .argument('<event_type>', `the event type: ${EVENT_TYPES.join(', ')}`, eventType)
      .option(
        '--data <key=value>',
        'set a field of data (repeatable); the value is JSON when it parses, else text',
        collect,
        [],
      )
      .option('--document-id <id>', 'the document the event is about (default: a new doc_… each event)')
      .option(
        '--count <n>',
        'publish this many (1 to 10000), with a progress bar',
        positiveInteger('--count', 10_000),
        1,
      ),
    done,
    async (connection, options, type: string) => {
      const fields: Record<string, unknown> = {};
      for (const pair of options.data as string[]) {
        const at = pair.indexOf('=');
        if (at <= 0) throw new ApiUsageError(`--data takes key=value, got "${pair}"`);
        const raw = pair.slice(at + 1);
        let value: unknown = raw;
        try {
          value = JSON.parse(raw);
        } catch {
          value = raw;
        }
        fields[pair.slice(0, at)] = value;
      }
      const count = options.count as number;
      const sample = () => {
        const document = (options.documentId as string | undefined) ?? `doc_${randomBytes(6).toString('hex')}`;
        return {
          document_id: document,
          signer_email: 'signer@example.com',
          audit_url: `https://sign.example.com/audit/${document}`,
          ...fields,
        };
      };
      const bar = await progressBar('publishing [{bar}] {value}/{total}');
      if (count > 1) bar.start(count, 0);
      const results: { id: string; event: string; deliveries: number; data: Record<string, unknown> }[] = [];
      // One event: POST /v1/events. More: POST /v1/events/batch, 100 events a request (so the bar
      // moves), four requests in flight; the answers come back in input order.
      const batches: Record<string, unknown>[][] = [];
      for (let i = 0; i < count; i += 100) batches.push(Array.from({ length: Math.min(100, count - i) }, sample));
      const answered: (typeof results)[] = new Array(batches.length);
      let next = 0;
      const worker = async () => {
        while (next < batches.length) {
          const at = next++;
          const datas = batches[at] as Record<string, unknown>[];
          if (count === 1) {
            const published = await callApi<{ id: string; event: string; deliveries: number }>(
              connection,
              'POST',
              '/v1/events',
              { body: { event: type, data: datas[0] } },
            );
            answered[at] = [{ ...published, data: datas[0] as Record<string, unknown> }];
            continue;
          }
          const published = await callApi<{ events: { id: string; event: string; deliveries: number }[] }>(
            connection,
            'POST',
            '/v1/events/batch',
            { body: { events: datas.map((data) => ({ event: type, data })) } },
          );
          answered[at] = published.events.map((e, i) => ({ ...e, data: datas[i] as Record<string, unknown> }));
          bar.increment(datas.length);
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(4, batches.length) }, worker));
      } finally {
        if (count > 1) bar.stop();
      }
      for (const group of answered) results.push(...group);
      if (options.json) return printJson(results.map(({ data: _, ...r }) => r));
      for (const r of results) {
        process.stdout.write(
          `${r.id} ${r.event} ${String(r.data.document_id)} -> ${r.deliveries} deliver${r.deliveries === 1 ? 'y' : 'ies'} queued\n`,
        );
      }
      if (count > 1) {
        const total = results.reduce((n, r) => n + r.deliveries, 0);
        process.stdout.write(`published ${count} events; ${total} deliveries queued\n`);
      }
    },
  );

  program
    .command('listen')
    .description('forward this account’s webhooks to a local URL, with no public URL needed, until ^C')
    .requiredOption('--forward-to <url>', 'the local URL to POST each webhook to (http://localhost:3000/webhooks)')
    .option('--events <types>', `comma-separated event types to receive (default all: ${EVENT_TYPES.join(',')})`)
    .addOption(apiUrlOption())
    .addOption(new Option('--json', 'print one JSON line per delivery, for scripts'))
    .addHelpText(
      'after',
      '\nDeliveries are queued, signed, retried and logged as for a subscription; the local answer is the\n' +
        'attempt. The signing secret printed at start stays the same for the token across runs. A dropped\n' +
        'connection reconnects by itself, and what was published meanwhile arrives after it. ^C ends the\n' +
        'session and cancels its deliveries not yet made.',
    )
    .action(async (options: ListenOptions & CommonOptions) => {
      const connection = resolveConnection(options.apiUrl);
      done(await listen(connection, options));
    });

  // ---- subscriptions ----
  const subscriptions = commandGroup(program, 'subscriptions', 'list, create and manage subscriptions', addHelp);
  apiAction(
    subscriptions
      .command('list')
      .description('the subscriptions, newest first, with each one’s latest delivery')
      .addOption(
        new Option('--status <status>', 'only those with this status').choices(['active', 'paused', 'disabled']),
      )
      .option('--event-type <type>', 'only those that take this event type', subscribableType)
      .option('--limit <n>', 'at most this many (1 to 100)', positiveInteger('--limit', 100), 100),
    done,
    async (connection, options) => {
      const page = await callApi<{ subscriptions: Subscription[]; next_cursor: string | null }>(
        connection,
        'GET',
        '/v1/webhooks/subscriptions',
        {
          query: {
            status: options.status as string,
            event_type: options.eventType as string,
            limit: options.limit as number,
          },
        },
      );
      if (options.json) return printJson(page);
      if (page.subscriptions.length === 0) {
        process.stdout.write('no subscriptions; make one with "countersign subscriptions create"\n');
        return;
      }
      printSubscriptions(page.subscriptions);
    },
  );
  const showSubscription = (s: Subscription) =>
    process.stdout.write(
      formatFacts([
        ['id', s.id],
        ['target_url', s.target_url],
        ['event_types', s.event_types.join(', ')],
        ['status', s.status],
        ['disabled_reason', s.disabled_reason],
        ['secret_token', s.has_secret_token ? 'set' : 'none'],
        ['rate_limit', s.rate_limit_per_second === null ? 'none' : `${s.rate_limit_per_second}/s`],
        ['ordering', s.ordering],
        ['created_at', shortTime(s.created_at)],
        [
          'last_delivery',
          s.last_delivery
            ? `${s.last_delivery.id} ${s.last_delivery.status} ${outcome(s.last_delivery.last_attempt)}`
            : 'none',
        ],
      ]),
    );
  apiAction(
    subscriptions.command('get').description('one subscription').argument('<id>', 'the subscription id (sub_…)'),
    done,
    async (connection, options, id: string) => {
      const found = await callApi<{ subscriptions: Subscription[] }>(
        connection,
        'GET',
        `/v1/webhooks/subscriptions/${encodeURIComponent(id)}`,
      );
      if (options.json) return printJson(found);
      showSubscription(found.subscriptions[0] as Subscription);
    },
  );
  apiAction(
    subscriptions
      .command('create')
      .description('subscribe a target URL to one event type or several; prints its signing secret once')
      .requiredOption('--target-url <url>', 'where the webhooks go (https)')
      .option('--event-type <type>', 'one event type (repeat it, or use a comma list, for several)', collect, [])
      .option(
        '--secret-token-stdin',
        'read the seed’s secret_token from standard input (never a flag: it is a credential)',
      )
      .option('--rate-limit <n>', 'at most n deliveries a second (1 to 10000)', rateLimit)
      .option('--ordering <mode>', 'document: one document’s deliveries one at a time, in publish order', ordering),
    done,
    async (connection, options) => {
      const types = (options.eventType as string[]).flatMap((t) => t.split(',')).map((t) => subscribableType(t.trim()));
      if (types.length === 0) throw new ApiUsageError('subscriptions create needs --event-type');
      let secretToken: string | undefined;
      if (options.secretTokenStdin) {
        secretToken = await readToken();
        if (!secretToken) throw new ApiUsageError('--secret-token-stdin: nothing on standard input');
      }
      const made = await callApi<{ subscriptions: Subscription[] }>(connection, 'POST', '/v1/webhooks/subscriptions', {
        body: {
          target_url: options.targetUrl,
          ...(types.length === 1 ? { event_type: types[0] } : { event_types: types }),
          ...(secretToken === undefined ? {} : { secret_token: secretToken }),
          ...(options.rateLimit === undefined || options.rateLimit === 'none'
            ? {}
            : { rate_limit_per_second: options.rateLimit }),
          ...(options.ordering === undefined ? {} : { ordering: options.ordering }),
        },
      });
      if (options.json) return printJson(made);
      const s = made.subscriptions[0] as Subscription;
      showSubscription(s);
      process.stdout.write(`signing_secret: ${s.signing_secret} (shown only this once)\n`);
    },
  );
  apiAction(
    subscriptions
      .command('update')
      .description('change a subscription’s rate limit or ordering')
      .argument('<id>', 'the subscription id (sub_…)')
      .option('--rate-limit <n>', 'at most n deliveries a second (1 to 10000), or none', rateLimit)
      .option('--ordering <mode>', 'none, or document (one document at a time, in publish order)', ordering),
    done,
    async (connection, options, id: string) => {
      const body: Record<string, unknown> = {};
      if (options.rateLimit !== undefined) {
        body.rate_limit_per_second = options.rateLimit === 'none' ? null : options.rateLimit;
      }
      if (options.ordering !== undefined) body.ordering = options.ordering;
      if (Object.keys(body).length === 0)
        throw new ApiUsageError('subscriptions update needs --rate-limit or --ordering');
      const changed = await callApi<{ subscriptions: Subscription[] }>(
        connection,
        'PATCH',
        `/v1/webhooks/subscriptions/${encodeURIComponent(id)}`,
        { body },
      );
      if (options.json) return printJson(changed);
      showSubscription(changed.subscriptions[0] as Subscription);
    },
  );
  for (const [name, status, about] of [
    ['pause', 'paused', 'pause a subscription: its deliveries wait'],
    ['resume', 'active', 'resume a paused or disabled subscription: what waited is sent'],
  ] as const) {
    apiAction(
      subscriptions.command(name).description(about).argument('<id>', 'the subscription id (sub_…)'),
      done,
      async (connection, options, id: string) => {
        const changed = await callApi<{ subscriptions: Subscription[] }>(
          connection,
          'PATCH',
          `/v1/webhooks/subscriptions/${encodeURIComponent(id)}`,
          { body: { status } },
        );
        if (options.json) return printJson(changed);
        process.stdout.write(`${id} is ${changed.subscriptions[0]?.status}\n`);
      },
    );
  }
  apiAction(
    subscriptions
      .command('delete')
      .description('delete a subscription; deliveries not yet made are cancelled')
      .argument('<id>', 'the subscription id (sub_…)')
      .option('--yes', 'do it without asking (needed when standard input is not a terminal)'),
    done,
    async (connection, options, id: string) => {
      if (!options.yes) {
        if (!process.stdin.isTTY)
          throw new ApiUsageError('subscriptions delete needs --yes when not run at a terminal');
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await new Promise<string>((resolve) => rl.question(`delete ${id}? [y/N] `, resolve));
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) {
          process.stdout.write('not deleted\n');
          return;
        }
      }
      await callApi(connection, 'DELETE', `/v1/webhooks/subscriptions/${encodeURIComponent(id)}`);
      if (options.json) return printJson({ id, deleted: true });
      process.stdout.write(`deleted ${id}\n`);
    },
  );
  apiAction(
    subscriptions
      .command('rotate-secret')
      .description('a new signing secret, printed once; the old one signs beside it for the grace period')
      .argument('<id>', 'the subscription id (sub_…)')
      .option('--grace-period <duration>', 'how long the old secret keeps signing (0 to 7d; default 1d)'),
    done,
    async (connection, options, id: string) => {
      const grace = options.gracePeriod === undefined ? undefined : parseDuration(options.gracePeriod as string);
      if (options.gracePeriod !== undefined && (grace === undefined || grace > 7 * 86_400_000)) {
        throw new ApiUsageError(`--grace-period must be a duration from 0 to 7d, got "${options.gracePeriod}"`);
      }
      const rotated = await callApi<{
        subscriptions: (Subscription & { signing_secret: string; previous_secret_expires_at: string | null })[];
      }>(connection, 'POST', `/v1/webhooks/subscriptions/${encodeURIComponent(id)}/rotate-secret`, {
        body: grace === undefined ? {} : { grace_period_seconds: Math.floor(grace / 1000) },
      });
      if (options.json) return printJson(rotated);
      const s = rotated.subscriptions[0];
      process.stdout.write(
        `signing_secret: ${s?.signing_secret} (shown only this once)\nprevious secret signs until: ${s?.previous_secret_expires_at ?? 'no longer'}\n`,
      );
    },
  );
  apiAction(
    subscriptions
      .command('test')
      .description('send a test event to this subscription only')
      .argument('<id>', 'the subscription id (sub_…)')
      .option('--event-type <type>', 'which of its event types (default: its first)', eventType),
    done,
    async (connection, options, id: string) => {
      const sent = await callApi<{ event_id: string; event_type: string; deliveries: number }>(
        connection,
        'POST',
        `/v1/webhooks/subscriptions/${encodeURIComponent(id)}/test`,
        { body: options.eventType ? { event_type: options.eventType } : {} },
      );
      if (options.json) return printJson(sent);
      process.stdout.write(`${sent.event_id} ${sent.event_type} (test) -> ${sent.deliveries} delivery queued\n`);
    },
  );

  // ---- events ----
  const events = commandGroup(program, 'events', 'published events', addHelp);
  apiAction(
    events
      .command('list')
      .description('published events, newest first')
      .option('--event-type <type>', 'only this type', eventType)
      .option('--document-id <id>', 'only events about this document')
      .option('--include-tests', 'include test events')
      .option('--since <time>', 'created at or after (RFC 3339, or a duration back: 2h)', timeOption('--since'))
      .option('--until <time>', 'created before (RFC 3339, or a duration back)', timeOption('--until'))
      .option('--limit <n>', 'at most this many (1 to 100)', positiveInteger('--limit', 100), 20),
    done,
    async (connection, options) => {
      const query: Query = {
        event_type: options.eventType as string,
        document_id: options.documentId as string,
        include_tests: options.includeTests ? true : undefined,
        since: options.since as string,
        until: options.until as string,
        limit: options.limit as number,
      };
      const page = await callApi<{ events: EventView[] }>(connection, 'GET', '/v1/events', { query });
      if (options.json) return printJson(page);
      process.stdout.write(
        formatTable(
          ['ID', 'EVENT', 'DOCUMENT', 'DELIVERIES', 'CREATED'],
          page.events.map((e) => [
            e.id,
            `${e.event}${e.test ? ' (test)' : ''}`,
            String(e.data.document_id ?? ''),
            e.deliveries,
            shortTime(e.created_at),
          ]),
        ),
      );
    },
  );
  apiAction(
    events.command('get').description('one event, with its payload').argument('<id>', 'the event id (evt_…)'),
    done,
    async (connection, options, id: string) => {
      const event = await callApi<EventView>(connection, 'GET', `/v1/events/${encodeURIComponent(id)}`);
      if (options.json) return printJson(event);
      process.stdout.write(
        formatFacts([
          ['id', event.id],
          ['event', event.event],
          ['timestamp', event.timestamp],
          ['created_at', shortTime(event.created_at)],
          ['deliveries', event.deliveries],
          ['test', event.test],
        ]),
      );
      process.stdout.write(`data: ${JSON.stringify(event.data, null, 2)}\n`);
    },
  );

  // ---- deliveries ----
  const deliveries = commandGroup(program, 'deliveries', 'the delivery log', addHelp);
  const deliveryFilters = (command: Command) =>
    command
      .addOption(new Option('--status <status>', 'only this status').choices([...DELIVERY_STATUSES]))
      .option('--subscription <id>', 'only this subscription’s')
      .option('--event <id>', 'only this event’s')
      .option('--document-id <id>', 'only deliveries of events about this document');
  const filterQuery = (options: Record<string, unknown>): Query => ({
    status: options.status as string,
    subscription_id: options.subscription as string,
    event_id: options.event as string,
    document_id: options.documentId as string,
  });
  apiAction(
    deliveryFilters(deliveries.command('list').description('deliveries, newest first'))
      .option('--since <time>', 'created at or after (RFC 3339, or a duration back: 2h)', timeOption('--since'))
      .option('--until <time>', 'created before (RFC 3339, or a duration back)', timeOption('--until'))
      .option('--limit <n>', 'at most this many (1 to 100)', positiveInteger('--limit', 100), 20),
    done,
    async (connection, options) => {
      const page = await callApi<{ deliveries: DeliveryView[] }>(connection, 'GET', '/v1/deliveries', {
        query: {
          ...filterQuery(options),
          since: options.since as string,
          until: options.until as string,
          limit: options.limit as number,
        },
      });
      if (options.json) return printJson(page);
      printDeliveries(page.deliveries);
    },
  );
  apiAction(
    deliveries.command('get').description('one delivery and every attempt').argument('<id>', 'the delivery id (dlv_…)'),
    done,
    async (connection, options, id: string) => {
      const d = await callApi<DeliveryView>(connection, 'GET', `/v1/deliveries/${encodeURIComponent(id)}`);
      if (options.json) return printJson(d);
      process.stdout.write(
        formatFacts([
          ['id', d.id],
          ['status', d.status],
          ['target', d.target_url ?? d.target],
          ['event', d.event_id],
          ['attempts', d.attempt_count],
          ['next_attempt_at', shortTime(d.next_attempt_at)],
          ['delivered_at', shortTime(d.delivered_at)],
        ]),
      );
      process.stdout.write('\n');
      process.stdout.write(
        formatTable(
          ['#', 'STARTED', 'MS', 'STATUS', 'ERROR', 'ANSWER'],
          (d.attempts ?? []).map((a) => [
            `${a.number}${a.trigger === 'manual' ? ' (manual)' : ''}`,
            shortTime(a.started_at),
            a.duration_ms,
            a.status_code,
            a.error,
            (a.response_excerpt ?? '').replace(/\s+/g, ' ').slice(0, 60),
          ]),
        ),
      );
    },
  );
  apiAction(
    deliveries
      .command('redeliver')
      .description('one more attempt of a delivery, now')
      .argument('<id>', 'the delivery id (dlv_…)'),
    done,
    async (connection, options, id: string) => {
      const d = await callApi<DeliveryView>(connection, 'POST', `/v1/deliveries/${encodeURIComponent(id)}/redeliver`);
      if (options.json) return printJson(d);
      process.stdout.write(`${id} queued for one more attempt now\n`);
    },
  );
  apiAction(
    deliveryFilters(
      deliveries
        .command('tail')
        .description('follow attempts live, one line each, until ^C')
        .option('--interval <duration>', 'how often to ask (200ms to 1m; default 1s)'),
    ),
    done,
    async (connection, options) => tail(connection, options),
  );

  // ---- replay ----
  apiAction(
    program
      .command('replay')
      .description('re-queue a subscription’s failed deliveries created in a window, with a progress bar')
      .requiredOption('--subscription <id>', 'the subscription (sub_…)')
      .requiredOption('--since <time>', 'from (RFC 3339, or a duration back: 24h)', timeOption('--since'))
      .option('--until <time>', 'until (RFC 3339, or a duration back; default now)', timeOption('--until')),
    done,
    async (connection, options) => {
      const since = Date.parse(options.since as string);
      const until = options.until === undefined ? Date.now() : Date.parse(options.until as string);
      if (!(since < until)) throw new ApiUsageError('--since must be before --until');
      // The window in steps of an hour at most (and 100 steps at most), so a long window shows progress.
      const steps = Math.min(100, Math.max(1, Math.ceil((until - since) / 3_600_000)));
      const bar = await progressBar('replaying [{bar}] {percentage}% | {requeued} re-queued');
      bar.start(steps, 0, { requeued: 0 });
      let requeued = 0;
      try {
        for (let i = 0; i < steps; i++) {
          const from = since + Math.floor(((until - since) * i) / steps);
          const to = since + Math.floor(((until - since) * (i + 1)) / steps);
          const answer = await callApi<{ requeued: number }>(
            connection,
            'POST',
            `/v1/webhooks/subscriptions/${encodeURIComponent(options.subscription as string)}/replay`,
            { body: { since: new Date(from).toISOString(), until: new Date(to).toISOString() } },
          );
          requeued += answer.requeued;
          bar.increment(1, { requeued });
        }
      } finally {
        bar.stop();
      }
      if (options.json) return printJson({ requeued });
      process.stdout.write(`${requeued} failed deliver${requeued === 1 ? 'y' : 'ies'} re-queued\n`);
    },
  );

  // ---- erasure ----
  apiAction(
    program
      .command('erasure')
      .description('erase a signer’s address or a document from the stored events and attempts (admin token)')
      .option('--signer-email <address>', 'every event whose data holds this address, in any letter case')
      .option('--document-id <id>', 'every event of this document')
      .addHelpText(
        'after',
        '\nGive exactly one. The events keep their id, type and times, with data {"erased":true}; their\n' +
          'deliveries not yet made are cancelled. Exits 1 when the server reports the erasure incomplete\n' +
          '(run it again), with what remains on stderr.',
      ),
    done,
    async (connection, options) => {
      const email = options.signerEmail as string | undefined;
      const documentId = options.documentId as string | undefined;
      if ((email === undefined) === (documentId === undefined)) {
        throw new ApiUsageError(
          'erasure needs exactly one of --signer-email and --document-id; see "countersign erasure --help"',
        );
      }
      const answer = await callApi<{
        events_erased: number;
        deliveries_cancelled: number;
        attempts_scrubbed: number;
        complete: boolean;
        warnings: string[];
      }>(connection, 'POST', '/v1/erasure', {
        body: email === undefined ? { document_id: documentId } : { signer_email: email },
      });
      if (options.json) printJson(answer);
      else {
        process.stdout.write(
          `erased ${answer.events_erased} event${answer.events_erased === 1 ? '' : 's'}, cancelled ` +
            `${answer.deliveries_cancelled} deliver${answer.deliveries_cancelled === 1 ? 'y' : 'ies'}, scrubbed ` +
            `${answer.attempts_scrubbed} attempt${answer.attempts_scrubbed === 1 ? '' : 's'}\n`,
        );
      }
      if (!answer.complete) throw new Error(`the erasure is not complete: ${answer.warnings.join('; ')}`);
    },
  );
}

/**
 * `deliveries tail`: asks for the newest deliveries every interval and prints a line for each
 * attempt logged since it last asked (the delivery's latest logged attempt moved). It follows deliveries made
 * since it started and those on the first page when it starts; a retry of an older delivery that
 * has left the first page is not shown.
 */
async function tail(connection: ApiConnection, options: CommonOptions & Record<string, unknown>): Promise<never> {
  const interval = options.interval === undefined ? 1000 : parseDuration(options.interval as string);
  if (interval === undefined || interval < 200 || interval > 60_000) {
    throw new ApiUsageError(`--interval must be a duration from 200ms to 1m, got "${options.interval}"`);
  }
  const seen = new Map<string, number>();
  let first = true;
  let failures = 0;
  for (;;) {
    try {
      const page = await callApi<{ deliveries: DeliveryView[] }>(connection, 'GET', '/v1/deliveries', {
        query: {
          status: options.status as string,
          subscription_id: options.subscription as string,
          event_id: options.event as string,
          document_id: options.documentId as string,
          limit: 100,
        },
      });
      if (failures > 0) process.stderr.write('countersign: reconnected\n');
      failures = 0;
      for (const d of [...page.deliveries].reverse()) {
        // The last attempt logged, not attempt_count: that moves when an attempt starts, this when it ends.
        const logged = d.last_attempt?.number ?? 0;
        const before = seen.get(d.id);
        seen.set(d.id, logged);
        const a = d.last_attempt;
        if (first || !a || (before ?? 0) >= logged) continue;
        const line = options.json
          ? JSON.stringify(d)
          : `${shortTime(a.started_at)}  ${d.id}  ${d.event_id}  #${a.number} ${d.status} -> ${outcome(a)} (${a.duration_ms} ms)  ${d.target_url ?? d.target}`;
        process.stdout.write(`${line}\n`);
      }
      if (first) process.stderr.write(`following deliveries at ${connection.url} (^C to stop)\n`);
      first = false;
      if (seen.size > 10_000) {
        const keep = new Set(page.deliveries.map((d) => d.id));
        for (const id of seen.keys()) if (!keep.has(id)) seen.delete(id);
      }
    } catch (err) {
      // A refusal (a revoked token, a bad filter) will not mend itself; an unreachable server may.
      if (err instanceof ApiCallError && err.status >= 400 && err.status < 500) throw err;
      failures++;
      // Never a silent stop: say so, and keep trying.
      if (failures === 1) process.stderr.write(`countersign: ${(err as Error).message}; retrying\n`);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(interval * 2 ** Math.min(failures, 5), 30_000)));
  }
}
