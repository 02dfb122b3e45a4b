// One document: its status, its signers and theirs, the webhooks its steps made, and its audit
// trail: the signed link a receiver opens without a token, and a check of the hash chain.
import { useState } from 'preact/hooks';
import { useRoute } from 'preact-iso';
import { ApiError } from '../../api/client';
import { type AuditVerdict, type DocumentView, queries } from '../../api/queries';
import { Empty, ErrorNotice, Loading, Status, TableFrame, Time } from '../../common/bits';
import { useResource } from '../../common/use-resource';
import { DeliveryTable } from '../deliveries/DeliveryTable';

/** What each way of breaking means, in words. */
const BROKEN: Record<NonNullable<AuditVerdict['first_broken']>['reason'], string> = {
  sequence: 'an entry before it is missing or repeated',
  prev_hash: 'it does not name the hash of the entry before it',
  hash: 'its contents do not match its hash',
  version: 'it is unkeyed where only entries hashed under the chain key may be',
  head: 'the trail ends before the last entry the document recorded',
  status: 'the document’s status is not what its entries add up to',
  title: 'the document’s title is not the one its first entry committed to',
};

export function DocumentScreen() {
  const { params } = useRoute();
  const id = params.id as string;
  const doc = useResource(() => queries.document(id), [id]);
  if (doc.error instanceof ApiError && doc.error.status === 404) {
    return (
      <>
        <h1>Document not found</h1>
        <Empty title={`There is no document ${id} in this account.`}>
          See <a href="/ui/documents">the documents</a>.
        </Empty>
      </>
    );
  }
  const d = doc.data;
  return (
    <>
      <p class="crumbs">
        <a href="/ui/documents">Documents</a> /
      </p>
      <h1>{d ? d.title : 'Document'}</h1>
      <ErrorNotice error={doc.error} />
      {!d && doc.loading ? <Loading /> : null}
      {d ? <Details d={d} /> : null}
    </>
  );
}

function Details({ d }: { d: DocumentView }) {
  return (
    <>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <Status value={d.status} />
        </dd>
        <dt>External id</dt>
        <dd>{d.external_id ? <code>{d.external_id}</code> : <span class="muted">none</span>}</dd>
        <dt>Id</dt>
        <dd>
          <code>{d.id}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          <Time iso={d.created_at} />
        </dd>
        <dt>Updated</dt>
        <dd>
          <Time iso={d.updated_at} />
        </dd>
      </dl>

      <section aria-labelledby="signers">
        <h2 id="signers">Signers</h2>
        <TableFrame label="Signers">
          <thead>
            <tr>
              <th scope="col">Signer</th>
              <th scope="col">Status</th>
              <th scope="col">Acted</th>
              <th scope="col">Decline reason</th>
            </tr>
          </thead>
          <tbody>
            {d.signers.map((s) => (
              <tr key={s.id} data-testid="signer">
                <td class="signer">
                  {s.name ? (
                    <>
                      {s.name}
                      <br />
                    </>
                  ) : null}
                  {s.email ?? <span class="muted">address erased</span>}
                </td>
                <td>
                  <Status value={s.status} />
                </td>
                <td>
                  <Time iso={s.acted_at} />
                </td>
                <td>{s.decline_reason ?? <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </TableFrame>
      </section>

      <section aria-labelledby="audit">
        <h2 id="audit">Audit trail</h2>
        <p>
          Every step is an entry of a hash chain: who took it, when, and from where. Each webhook of this document
          carries the link to it, which opens without a token.
        </p>
        <AuditActions id={d.id} auditUrl={d.audit_url} />
      </section>

      <section aria-labelledby="webhooks">
        <h2 id="webhooks">Webhooks</h2>
        <DeliveryTable
          query={{ document_id: d.id, limit: 20 }}
          emptyText="No webhooks yet: a draft makes none until it is sent, and only events a subscription or the callback takes are delivered."
        />
        <p>
          <a href={`/ui/events?document_id=${encodeURIComponent(d.id)}`}>The events of this document</a>
        </p>
      </section>
    </>
  );
}

/** The link to the trail, and "Verify chain" with its verdict (GET /v1/documents/:id/audit/verify). */
function AuditActions({ id, auditUrl }: { id: string; auditUrl: string }) {
  const [verdict, setVerdict] = useState<AuditVerdict | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const broken = verdict?.first_broken;
  return (
    <>
      <div class="actions">
        <a href={auditUrl} target="_blank" rel="noopener noreferrer">
          Audit trail<span aria-hidden="true"> ↗</span>
          <span class="visually-hidden"> (opens in a new tab)</span>
        </a>
        <button
          type="button"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(undefined);
            try {
              setVerdict(await queries.verifyAuditChain(id));
            } catch (err) {
              setVerdict(undefined);
              setError(err as Error);
            } finally {
              setBusy(false);
            }
          }}
        >
          Verify chain
        </button>
      </div>
      <div aria-live="polite">
        {verdict?.valid ? (
          <p class="notice notice-good" data-testid="chain-verdict">
            The chain verifies: {verdict.entries} {verdict.entries === 1 ? 'entry' : 'entries'}, each hashed over the
            one before.
          </p>
        ) : null}
        {verdict && !verdict.valid ? (
          <p class="notice notice-error" data-testid="chain-verdict">
            The chain is broken at entry {broken?.seq} ({broken?.reason}){broken ? `: ${BROKEN[broken.reason]}` : ''}.
          </p>
        ) : null}
      </div>
      <ErrorNotice error={error} />
    </>
  );
}
