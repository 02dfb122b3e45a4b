// Small pieces every screen uses: times in the viewer's zone, statuses as words, errors in the
// API's own words, empty states, JSON, copy buttons, and "load more".
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError } from '../api/client';

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A time in the viewer's time zone, with the ISO time on hover. */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">—</span>;
  const date = new Date(iso);
  return (
    <time dateTime={iso} title={iso}>
      {Number.isNaN(date.getTime()) ? iso : dateTime.format(date)}
    </time>
  );
}

/** A status as a word, coloured as a second cue only. */
export function Status({ value, label }: { value: string; label?: string }) {
  return <span class={`status status-${value}`}>{label ?? value}</span>;
}

export function ErrorNotice({ error }: { error: Error | undefined }) {
  if (!error) return null;
  const code = error instanceof ApiError ? ` (${error.status} ${error.code})` : '';
  return (
    <p class="notice notice-error" role="alert">
      {error.message}
      <span class="muted">{code}</span>
    </p>
  );
}

export function Loading() {
  return (
    <p class="muted" aria-live="polite">
      Loading…
    </p>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children ? <p>{children}</p> : null}
    </div>
  );
}

export function JsonView({ value, label }: { value: unknown; label: string }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling block must be reachable by keyboard
    <section class="json" tabIndex={0} aria-label={label}>
      <pre>{typeof value === 'string' ? value : JSON.stringify(value, null, 2)}</pre>
    </section>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      class="secondary"
      onClick={() => {
        navigator.clipboard?.writeText(text).then(
          () => setCopied(true),
          () => setCopied(false),
        );
      }}
    >
      {copied ? 'Copied' : label}
    </button>
  );
}

/** A secret shown once, right after it was made, with a copy button. */
export function SecretOnce({ title, secret, onDone }: { title: string; secret: string; onDone: () => void }) {
  return (
    <section class="notice notice-secret" aria-label={title}>
      <p>
        <strong>{title}</strong> This is the only time it is shown: copy it now and keep it where your receiver reads
        its secrets.
      </p>
      <p class="secret-row">
        <code class="secret">{secret}</code>
        <CopyButton text={secret} />
        <button type="button" class="secondary" onClick={onDone}>
          Done
        </button>
      </p>
    </section>
  );
}

export function LoadMore({ cursor, onMore }: { cursor: string | null | undefined; onMore: (c: string) => void }) {
  if (!cursor) return null;
  return (
    <p>
      <button type="button" class="secondary" onClick={() => onMore(cursor)}>
        Load more
      </button>
    </p>
  );
}

/** Where a table scrolls sideways on a narrow screen instead of squeezing its columns. */
export function TableFrame({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard
    <section class="table-frame" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </section>
  );
}

/** An ISO time from a datetime-local input's value (the viewer's zone), or undefined when empty. */
export function isoFromLocal(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** A datetime-local input's value for a time, in the viewer's zone. */
export function localFromDate(date: Date): string {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}
