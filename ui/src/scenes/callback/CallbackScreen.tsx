// The account callback (the Conga Sign style API): where every event of the account is sent, with
// Basic, Bearer or no authentication. Credentials are write-only: the API shows them masked.
import { useState } from 'preact/hooks';
import { type AuthType, type Callback, queries } from '../../api/queries';
import { Empty, ErrorNotice, Loading, SecretOnce, Time } from '../../common/bits';
import { CircuitFacts } from '../../common/Circuit';
import { useResource } from '../../common/use-resource';

export function CallbackScreen() {
  const callback = useResource(() => queries.callback(), []);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [secret, setSecret] = useState<string | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const cb = callback.data;

  const act = async (work: () => Promise<string>) => {
    setError(undefined);
    setNotice(undefined);
    try {
      setNotice(await work());
      callback.reload();
    } catch (err) {
      setError(err as Error);
    }
  };

  return (
    <>
      <h1>Callback</h1>
      <p>
        The account callback gets every event of this account, beside any subscriptions. Its credentials are sent in the{' '}
        <code>Authorization</code> header of each delivery.
      </p>
      <ErrorNotice error={callback.error ?? error} />
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      {secret ? (
        <SecretOnce title="The callback's new signing secret:" secret={secret} onDone={() => setSecret(undefined)} />
      ) : null}
      {!cb && callback.loading ? <Loading /> : null}
      {cb ? (
        <>
          <section aria-labelledby="current">
            <h2 id="current">Current setting</h2>
            {cb.enabled ? (
              <dl class="facts">
                <dt>Callback URL</dt>
                <dd class="url">{cb.callbackUrl}</dd>
                <dt>Authentication</dt>
                <dd>{cb.authType}</dd>
                {cb.authType === 'Basic' ? (
                  <>
                    <dt>Username</dt>
                    <dd>{cb.username}</dd>
                    <dt>Password</dt>
                    <dd>{cb.password}</dd>
                  </>
                ) : null}
                {cb.authType === 'Bearer' ? (
                  <>
                    <dt>Bearer token</dt>
                    <dd>{cb.bearerToken}</dd>
                  </>
                ) : null}
                <dt>Signed</dt>
                <dd>{cb.signed ? 'yes, with webhook-signature' : 'no (rotate a secret to sign callbacks)'}</dd>
                <dt>Updated</dt>
                <dd>
                  <Time iso={cb.updatedAt} />
                </dd>
                <CircuitFacts
                  circuit={cb.circuit}
                  onProbe={() =>
                    act(async () => {
                      const { probing } = await queries.probeCallbackCircuit();
                      return probing
                        ? 'Probing now: the oldest postponed delivery goes at once. If it is answered, the rest follow.'
                        : 'No delivery is waiting: the next one published goes at once as the probe.';
                    })
                  }
                />
              </dl>
            ) : (
              <Empty title="No callback is set.">
                Set one below to receive every event of this account at one URL.
              </Empty>
            )}
            <div class="actions">
              {cb.enabled ? (
                <button
                  type="button"
                  class="danger"
                  onClick={() =>
                    act(async () => {
                      await queries.registerCallback({ callbackUrl: '', authType: 'None' });
                      return 'Callback disabled: no more events are sent to it.';
                    })
                  }
                >
                  Disable callback
                </button>
              ) : null}
              <button
                type="button"
                class="secondary"
                onClick={() =>
                  act(async () => {
                    const rotated = await queries.rotateCallbackSecret();
                    setSecret(rotated.signing_secret);
                    return 'Callback deliveries are now signed with the new secret.';
                  })
                }
              >
                Rotate secret
              </button>
            </div>
          </section>
          <CallbackForm
            key={cb.updatedAt ?? 'none'}
            current={cb}
            onSaved={(message) => {
              setNotice(message);
              setError(undefined);
              callback.reload();
            }}
          />
        </>
      ) : null}
    </>
  );
}

function CallbackForm({ current, onSaved }: { current: Callback; onSaved: (message: string) => void }) {
  const [url, setUrl] = useState(current.callbackUrl);
  const [authType, setAuthType] = useState<AuthType>(current.authType);
  const [username, setUsername] = useState(current.username ?? '');
  const [password, setPassword] = useState('');
  const [bearerToken, setBearerToken] = useState('');
  const [error, setError] = useState<Error | undefined>(undefined);
  return (
    <section aria-labelledby="set">
      <h2 id="set">{current.enabled ? 'Change the callback' : 'Set the callback'}</h2>
      <form
        class="grid-form"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await queries.registerCallback({
              callbackUrl: url.trim(),
              authType,
              ...(authType === 'Basic' ? { username, password } : {}),
              ...(authType === 'Bearer' ? { bearerToken } : {}),
            });
            setError(undefined);
            onSaved('Callback saved.');
          } catch (err) {
            setError(err as Error);
          }
        }}
      >
        <div class="field">
          <label for="cb-url">Callback URL</label>
          <input id="cb-url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="cb-auth">Authentication</label>
          <select id="cb-auth" value={authType} onChange={(e) => setAuthType(e.currentTarget.value as AuthType)}>
            <option value="None">None</option>
            <option value="Basic">Basic</option>
            <option value="Bearer">Bearer</option>
          </select>
        </div>
        {authType === 'Basic' ? (
          <>
            <div class="field">
              <label for="cb-username">Username</label>
              <input id="cb-username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
            </div>
            <div class="field">
              <label for="cb-password">Password</label>
              <input
                id="cb-password"
                type="password"
                required
                autoComplete="new-password"
                value={password}
                onInput={(e) => setPassword(e.currentTarget.value)}
              />
            </div>
          </>
        ) : null}
        {authType === 'Bearer' ? (
          <div class="field">
            <label for="cb-bearer">Bearer token</label>
            <input
              id="cb-bearer"
              type="password"
              required
              autoComplete="off"
              value={bearerToken}
              onInput={(e) => setBearerToken(e.currentTarget.value)}
            />
          </div>
        ) : null}
        <ErrorNotice error={error} />
        <div>
          <button type="submit">Save callback</button>
        </div>
      </form>
    </section>
  );
}
