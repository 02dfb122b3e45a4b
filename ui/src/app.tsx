// The portal's shell: signing in (a pasted token, or a portal link's), the navigation landmark and
// the screens, each at its own URL under /ui so that back, forward and reload work.

import { useEffect, useState } from 'preact/hooks';
import { ErrorBoundary, LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { ApiError, setApiToken, whenUnauthorized } from './api/client';
import { type Me, queries } from './api/queries';
import { CallbackScreen } from './scenes/callback/CallbackScreen';
import { DeliveriesScreen } from './scenes/deliveries/DeliveriesScreen';
import { DeliveryScreen } from './scenes/deliveries/DeliveryScreen';
import { DocumentScreen } from './scenes/documents/DocumentScreen';
import { DocumentsScreen } from './scenes/documents/DocumentsScreen';
import { EventScreen } from './scenes/events/EventScreen';
import { EventsScreen } from './scenes/events/EventsScreen';
import { NotFound } from './scenes/NotFound';
import { OverviewScreen } from './scenes/overview/OverviewScreen';
import { SignIn } from './scenes/sign-in/SignIn';
import { SubscriptionScreen } from './scenes/subscriptions/SubscriptionScreen';
import { SubscriptionsScreen } from './scenes/subscriptions/SubscriptionsScreen';
import { forgetSession, loadSession, type StoredSession, saveSession } from './session';

export const LINK_EXPIRED =
  'This portal link has expired or has been revoked. Ask the service that gave it to you for a new link.';
const TOKEN_ENDED = 'Your API token has expired or has been revoked. Sign in with a valid token.';

type State =
  | { kind: 'checking' }
  | { kind: 'signed-out'; message?: string }
  | { kind: 'signed-in'; session: StoredSession; me: Me };

/** Checks a token with GET /v1/me; a refused token gets `refusedMessage`, anything else the API's words. */
async function admit(session: StoredSession, refusedMessage: string): Promise<State> {
  try {
    const me = await queries.me(session.token);
    return { kind: 'signed-in', session, me };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return { kind: 'signed-out', message: refusedMessage };
    return { kind: 'signed-out', message: err instanceof Error ? err.message : String(err) };
  }
}

export function App({ linkToken }: { linkToken: string | undefined }) {
  const [state, setState] = useState<State>({ kind: 'checking' });

  const enter = (next: State) => {
    if (next.kind === 'signed-in') {
      saveSession(next.session);
      setApiToken(next.session.token);
    } else {
      forgetSession();
      setApiToken(undefined);
    }
    setState(next);
  };

  useEffect(() => {
    const session = linkToken ? { token: linkToken, fromLink: true } : loadSession();
    if (!session) {
      setState({ kind: 'signed-out' });
      return;
    }
    admit(session, session.fromLink ? LINK_EXPIRED : TOKEN_ENDED).then(enter);
  }, []);

  useEffect(() => {
    whenUnauthorized(() => {
      setState((current) => {
        const message = current.kind === 'signed-in' && current.session.fromLink ? LINK_EXPIRED : TOKEN_ENDED;
        forgetSession();
        setApiToken(undefined);
        return { kind: 'signed-out', message };
      });
    });
  }, []);

  if (state.kind === 'checking') {
    return (
      <main class="sign-in">
        <p class="muted">Signing in…</p>
      </main>
    );
  }
  if (state.kind === 'signed-out') {
    return (
      <SignIn
        message={state.message}
        onSignIn={async (token) => {
          const next = await admit(
            { token, fromLink: false },
            'That token was not accepted: it is unknown, expired or revoked.',
          );
          if (next.kind === 'signed-in') enter(next);
          return next.kind === 'signed-out' ? next.message : undefined;
        }}
      />
    );
  }
  return (
    <LocationProvider scope="/ui">
      <Shell me={state.me} onSignOut={() => enter({ kind: 'signed-out', message: 'You have signed out.' })} />
    </LocationProvider>
  );
}

const SCREENS = [
  { href: '/ui/', name: 'Overview', match: (p: string) => p === '/ui/' || p === '/ui' },
  { href: '/ui/subscriptions', name: 'Subscriptions', match: (p: string) => p.startsWith('/ui/subscriptions') },
  { href: '/ui/callback', name: 'Callback', match: (p: string) => p.startsWith('/ui/callback') },
  { href: '/ui/events', name: 'Events', match: (p: string) => p.startsWith('/ui/events') },
  { href: '/ui/deliveries', name: 'Deliveries', match: (p: string) => p.startsWith('/ui/deliveries') },
  { href: '/ui/documents', name: 'Documents', match: (p: string) => p.startsWith('/ui/documents') },
];

function Shell({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const { path } = useLocation();
  const current = SCREENS.find((s) => s.match(path));
  useEffect(() => {
    document.title = `${current?.name ?? 'Not found'} · countersign`;
  }, [current]);
  return (
    <>
      <a class="skip" href="#content">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">countersign</span>
        <span class="who">
          <span class="muted">Account</span> <strong>{me.account.name}</strong>
          {me.token.kind === 'portal' ? <span class="tag">portal link</span> : null}
        </span>
        <button type="button" class="secondary" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <nav aria-label="Main" class="nav">
        <ul>
          {SCREENS.map((s) => (
            <li key={s.href}>
              <a href={s.href} aria-current={s === current ? 'page' : undefined}>
                {s.name}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <main id="content" tabIndex={-1}>
        <ErrorBoundary>
          <Router>
            <Route path="/ui/" component={OverviewScreen} />
            <Route path="/ui/subscriptions" component={SubscriptionsScreen} />
            <Route path="/ui/subscriptions/:id" component={SubscriptionScreen} />
            <Route path="/ui/callback" component={CallbackScreen} />
            <Route path="/ui/events" component={EventsScreen} />
            <Route path="/ui/events/:id" component={EventScreen} />
            <Route path="/ui/deliveries" component={DeliveriesScreen} />
            <Route path="/ui/deliveries/:id" component={DeliveryScreen} />
            <Route path="/ui/documents" component={DocumentsScreen} />
            <Route path="/ui/documents/:id" component={DocumentScreen} />
            <Route default component={NotFound} />
          </Router>
        </ErrorBoundary>
      </main>
    </>
  );
}
