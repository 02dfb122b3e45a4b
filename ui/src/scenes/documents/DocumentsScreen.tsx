// Documents: countersign's own signing lifecycle, newest first, filtered by status (in the URL,
// so a filtered view can be shared and back and forward step through filters).

import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import {
  DOCUMENT_STATUSES,
  type DocumentPage,
  type DocumentQuery,
  type DocumentStatus,
  queries,
} from '../../api/queries';
import { Empty, ErrorNotice, Loading, LoadMore, Status, TableFrame, Time } from '../../common/bits';
import { usePages } from '../../common/use-resource';

export function DocumentsScreen() {
  const { query, route } = useLocation();
  const status = DOCUMENT_STATUSES.find((s) => s === query.status);
  const applied: DocumentQuery = { limit: 25, ...(status ? { status } : {}) };
  const key = JSON.stringify(applied);
  const { first, pages, cursor, moreError, more } = usePages<DocumentPage>(
    (at) => queries.documents(at === undefined ? applied : { ...applied, cursor: at }),
    [key],
  );
  const documents = pages.flatMap((p) => p.documents);

  return (
    <>
      <h1>Documents</h1>
      <StatusFilter
        key={key}
        applied={status}
        onApply={(next) => route(next ? `/ui/documents?status=${next}` : '/ui/documents')}
      />
      <ErrorNotice error={first.error ?? moreError} />
      {first.loading && pages.length === 0 ? <Loading /> : null}
      {!first.loading && documents.length === 0 && !first.error ? (
        status ? (
          <Empty title={`No ${status} documents.`} />
        ) : (
          <Empty title="No documents yet.">
            Create one with <code>POST /v1/documents</code> or <code>countersign documents create</code>. Each step it
            takes (send, sign, decline) makes its webhooks and an entry of its audit trail.
          </Empty>
        )
      ) : null}
      {documents.length > 0 ? (
        <TableFrame label="Documents">
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Status</th>
              <th scope="col">Signed</th>
              <th scope="col">External id</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {documents.map((d) => (
              <tr key={d.id}>
                <td>
                  <a href={`/ui/documents/${d.id}`}>{d.title}</a>
                </td>
                <td>
                  <Status value={d.status} />
                </td>
                <td>
                  {d.signers.filter((s) => s.status === 'signed').length} of {d.signers.length}
                </td>
                <td>{d.external_id ? <code>{d.external_id}</code> : <span class="muted">—</span>}</td>
                <td>
                  <Time iso={d.updated_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </TableFrame>
      ) : null}
      <LoadMore cursor={cursor} onMore={more} />
    </>
  );
}

function StatusFilter({
  applied,
  onApply,
}: {
  applied: DocumentStatus | undefined;
  onApply: (status: DocumentStatus | undefined) => void;
}) {
  const [status, setStatus] = useState<string>(applied ?? '');
  return (
    <form
      class="filters-form"
      aria-label="Filter documents"
      onSubmit={(e) => {
        e.preventDefault();
        onApply(DOCUMENT_STATUSES.find((s) => s === status));
      }}
    >
      <div class="field">
        <label for="d-status">Status</label>
        <select id="d-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          <option value="">any</option>
          {DOCUMENT_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <div class="field field-buttons">
        <button type="submit">Filter</button>
        <button type="button" class="secondary" onClick={() => onApply(undefined)}>
          Clear
        </button>
      </div>
    </form>
  );
}
