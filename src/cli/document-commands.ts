// `countersign documents …` and `countersign audit verify`: countersign's own signing lifecycle
// through the HTTP API (create a draft, send it, sign or decline for a signer, read them), and the
// check of a document's audit chain. Facts and tables for people, the API's JSON with --json; exit
// 1 with the API's message when it refuses a step (a 409 names the document's status) or when the
// chain does not verify, 2 for a usage error.
import { type Command, Option } from 'commander';
import { ApiUsageError, callApi } from './api-client.js';
import { apiAction, collect, commandGroup, type Done, positiveInteger, shortTime } from './api-commands.js';
import { formatFacts, formatTable, printJson } from './table.js';

// ---- the API's shapes, as far as the commands read them -----------------------------------------

export interface Signer {
  id: string;
  /** null once erased (POST /v1/erasure). */
  email: string | null;
  name: string | null;
  status: string;
  acted_at: string | null;
  decline_reason: string | null;
}
export interface DocumentView {
  id: string;
  title: string;
  external_id: string | null;
  status: string;
  signers: Signer[];
  audit_url: string;
  created_at: string;
  updated_at: string;
}
/** What a step answers: the document as it now is, and the events the step made. */
interface StepAnswer extends DocumentView {
  events: { id: string; event: string }[];
}
type BrokenReason = 'sequence' | 'version' | 'prev_hash' | 'hash' | 'head' | 'status' | 'title';
interface Verification {
  valid: boolean;
  entries: number;
  first_broken: { seq: number; reason: BrokenReason } | null;
}

const DOCUMENT_STATUSES = ['draft', 'sent', 'completed', 'declined'];

/** What each way of breaking means, for the person reading `audit verify`. */
const BROKEN: Record<BrokenReason, string> = {
  sequence: 'its sequence number is out of place: an entry before it is missing or repeated',
  prev_hash: 'it does not name the hash of the entry before it',
  hash: 'its contents do not match its hash',
  version: 'it is unkeyed where only entries hashed under the chain key may be',
  head: 'the trail ends before the last entry the document recorded',
  status: 'the document’s status is not what its entries add up to',
  title: 'the document’s title is not the one its first entry committed to',
};

/** `--signer ana@example.com` or `--signer "ana@example.com=Ana Lima"`: the part after = is the name. */
export function parseSigner(text: string): { email: string; name?: string } {
  const at = text.indexOf('=');
  const email = (at === -1 ? text : text.slice(0, at)).trim();
  const name = at === -1 ? undefined : text.slice(at + 1).trim();
  if (email === '' || name === '') {
    throw new ApiUsageError(`--signer takes an address, or address=name, got "${text}"`);
  }
  return name === undefined ? { email } : { email, name };
}

const documentPath = (id: string) => `/v1/documents/${encodeURIComponent(id)}`;

function printDocument(d: DocumentView): void {
  process.stdout.write(
    formatFacts([
      ['id', d.id],
      ['title', d.title],
      ['external_id', d.external_id],
      ['status', d.status],
      ['audit_url', d.audit_url],
      ['created_at', shortTime(d.created_at)],
      ['updated_at', shortTime(d.updated_at)],
    ]),
  );
  process.stdout.write('\n');
  process.stdout.write(
    formatTable(
      ['SIGNER', 'STATUS', 'ACTED', 'EMAIL', 'NAME', 'DECLINE REASON'],
      d.signers.map((s) => [s.id, s.status, shortTime(s.acted_at), s.email ?? '(erased)', s.name, s.decline_reason]),
    ),
  );
}

function printStep(answer: StepAnswer): void {
  printDocument(answer);
  process.stdout.write('\n');
  for (const e of answer.events) process.stdout.write(`published ${e.id} ${e.event}\n`);
}

export function addDocumentCommands(program: Command, done: Done, addHelp: (parent: Command) => void): void {
  const documents = commandGroup(
    program,
    'documents',
    'documents and their signers: create, send, sign, decline (publish scope), list and get',
    addHelp,
  );
  documents.addHelpText(
    'after',
    '\nEach step makes its webhooks (document.sent for each signer, document.signed, document.completed\n' +
      'after the last signature, document.declined) and an entry of the audit trail, in one transaction.\n' +
      'A step the document’s status does not allow is refused (exit 1) and changes nothing.',
  );

  apiAction(
    documents
      .command('create')
      .description('a draft document with its signers, in the order given')
      // Checked by the command, not made required options: commander would report a missing
      // --title before a misspelt option, and hide the better message.
      .option('--title <text>', 'the document’s title (required)')
      .option(
        '--signer <address[=name]>',
        'a signer, by e-mail address; the part after = is the name (repeatable, at least one)',
        collect,
        [],
      )
      .option('--external-id <id>', 'your own id for the document, carried by its events'),
    done,
    async (connection, options) => {
      const title = options.title as string | undefined;
      if (title === undefined || title.trim() === '') {
        throw new ApiUsageError('documents create needs --title; see "countersign documents create --help"');
      }
      const signers = (options.signer as string[]).map(parseSigner);
      if (signers.length === 0) {
        throw new ApiUsageError('documents create needs --signer (one for each signer)');
      }
      const made = await callApi<DocumentView>(connection, 'POST', '/v1/documents', {
        body: {
          title,
          signers,
          ...(options.externalId === undefined ? {} : { external_id: options.externalId }),
        },
      });
      if (options.json) return printJson(made);
      printDocument(made);
    },
  );

  apiAction(
    documents
      .command('list')
      .description('documents, newest first')
      .addOption(new Option('--status <status>', 'only those with this status').choices(DOCUMENT_STATUSES))
      .option('--limit <n>', 'at most this many (1 to 100)', positiveInteger('--limit', 100), 20),
    done,
    async (connection, options) => {
      const page = await callApi<{ documents: DocumentView[]; next_cursor: string | null }>(
        connection,
        'GET',
        '/v1/documents',
        { query: { status: options.status as string, limit: options.limit as number } },
      );
      if (options.json) return printJson(page);
      if (page.documents.length === 0) {
        process.stdout.write(
          options.status
            ? `no ${options.status} documents\n`
            : 'no documents; make one with "countersign documents create"\n',
        );
        return;
      }
      process.stdout.write(
        formatTable(
          ['ID', 'STATUS', 'SIGNED', 'UPDATED', 'EXTERNAL ID', 'TITLE'],
          page.documents.map((d) => [
            d.id,
            d.status,
            `${d.signers.filter((s) => s.status === 'signed').length}/${d.signers.length}`,
            shortTime(d.updated_at),
            d.external_id,
            d.title,
          ]),
        ),
      );
    },
  );

  apiAction(
    documents
      .command('get')
      .description('one document, its signers and its audit link')
      .argument('<id>', 'the document id (doc_…)'),
    done,
    async (connection, options, id: string) => {
      const d = await callApi<DocumentView>(connection, 'GET', documentPath(id));
      if (options.json) return printJson(d);
      printDocument(d);
    },
  );

  apiAction(
    documents
      .command('send')
      .description('send a draft to its signers: one document.sent event for each')
      .argument('<id>', 'the document id (doc_…)'),
    done,
    async (connection, options, id: string) => {
      const answer = await callApi<StepAnswer>(connection, 'POST', `${documentPath(id)}/send`);
      if (options.json) return printJson(answer);
      printStep(answer);
    },
  );

  apiAction(
    documents
      .command('sign')
      .description('record a signer’s signature: document.signed, and document.completed after the last one')
      .argument('<id>', 'the document id (doc_…)')
      .argument('<signer_id>', 'the signer id (sgn_…, from documents get)'),
    done,
    async (connection, options, id: string, signerId: string) => {
      const answer = await callApi<StepAnswer>(
        connection,
        'POST',
        `${documentPath(id)}/signers/${encodeURIComponent(signerId)}/sign`,
      );
      if (options.json) return printJson(answer);
      printStep(answer);
    },
  );

  apiAction(
    documents
      .command('decline')
      .description('record that a signer declined: document.declined, and the document is declined')
      .argument('<id>', 'the document id (doc_…)')
      .argument('<signer_id>', 'the signer id (sgn_…, from documents get)')
      .option('--reason <text>', 'why the signer declined (required)'),
    done,
    async (connection, options, id: string, signerId: string) => {
      const reason = options.reason as string | undefined;
      if (reason === undefined || reason.trim() === '') {
        throw new ApiUsageError('documents decline needs --reason; see "countersign documents decline --help"');
      }
      const answer = await callApi<StepAnswer>(
        connection,
        'POST',
        `${documentPath(id)}/signers/${encodeURIComponent(signerId)}/decline`,
        { body: { reason } },
      );
      if (options.json) return printJson(answer);
      printStep(answer);
    },
  );

  const audit = commandGroup(program, 'audit', 'a document’s audit trail', addHelp);
  apiAction(
    audit
      .command('verify')
      .description('recompute a document’s audit chain and name the first broken entry')
      .argument('<document_id>', 'the document id (doc_…)')
      .addHelpText(
        'after',
        '\nExits 0 when every entry holds, and 1 when one does not (changed, removed or reordered in the\n' +
          'database), naming the first: "entry 3 is broken (hash)".',
      ),
    done,
    async (connection, options, id: string) => {
      const verdict = await callApi<Verification>(connection, 'GET', `${documentPath(id)}/audit/verify`);
      if (options.json) printJson(verdict);
      else if (verdict.valid) {
        process.stdout.write(`chain verifies: ${verdict.entries} entr${verdict.entries === 1 ? 'y' : 'ies'}\n`);
      }
      if (!verdict.valid) {
        const broken = verdict.first_broken;
        throw new Error(
          broken
            ? `the audit chain of ${id} does not verify: entry ${broken.seq} is broken (${broken.reason}): ${BROKEN[broken.reason] ?? broken.reason}`
            : `the audit chain of ${id} does not verify`,
        );
      }
    },
  );
}
