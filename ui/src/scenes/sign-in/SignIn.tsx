// Sign in with an API token. The token is checked against the API before it is kept (in
// sessionStorage, for this tab only).
import { useState } from 'preact/hooks';

export function SignIn({
  message,
  onSignIn,
}: {
  message: string | undefined;
  onSignIn: (token: string) => Promise<string | undefined>;
}) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const shown = problem ?? message;
  return (
    <main class="sign-in" id="content">
      <h1>countersign</h1>
      <p>Webhook delivery for e-signature events. Sign in to see your subscriptions and deliveries.</p>
      {shown ? (
        <p class="notice notice-error" role="alert">
          {shown}
        </p>
      ) : null}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!token.trim()) {
            setProblem('Paste an API token first.');
            return;
          }
          setBusy(true);
          const refused = await onSignIn(token.trim());
          setBusy(false);
          setProblem(refused);
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          placeholder="cst_…"
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
        />
        <p class="hint">
          The token printed when countersign first started, or one from <code>countersign token create</code>. It is
          kept in this browser tab only, and forgotten when you sign out or close the tab.
        </p>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
