// The signed-in session: the API token, kept in sessionStorage (this tab only, gone when it
// closes; never localStorage, never a cookie). A portal link carries its token in the URL's
// fragment (#token=…): it is taken from there at once and the address bar is cleaned, so the
// token is not left in the history, a bookmark or a screenshot.
const KEY = 'countersign.session';

export interface StoredSession {
  token: string;
  /** Signed in through a portal link rather than with a pasted token. */
  fromLink: boolean;
}

export function takeTokenFromLink(): string | undefined {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get('token');
  if (token === null) return undefined;
  window.history.replaceState(window.history.state, '', window.location.pathname + window.location.search);
  return token.trim() || undefined;
}

export function loadSession(): StoredSession | undefined {
  try {
    const raw = window.sessionStorage.getItem(KEY);
    if (!raw) return undefined;
    const parsed = JSON.parse(raw) as Partial<StoredSession>;
    return typeof parsed.token === 'string' ? { token: parsed.token, fromLink: parsed.fromLink === true } : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(session: StoredSession): void {
  window.sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function forgetSession(): void {
  window.sessionStorage.removeItem(KEY);
}
