// One client's hostile requests must not stall another's: over real sockets, a second client keeps
// getting answers while the first posts bodies nested two million levels deep. Counted in
// completed requests, never timed. (An erasure's file rebuild off the event loop is counted in
// event-loop turns, in test/erasure.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteDialect } from './helpers/databases.js';
import { startTestService, type TestService } from './helpers/service.js';

describe('a second client while the first attacks', () => {
  let service: TestService;
  let base: string;

  beforeAll(async () => {
    service = await startTestService(sqliteDialect);
    base = await service.app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await service?.close();
  });

  /** Runs `attack` while another client asks /healthz in a loop; returns how many answers it got meanwhile. */
  async function answeredDuring(attack: () => Promise<void>): Promise<number> {
    let attacking = true;
    let answered = 0;
    const other = (async () => {
      while (attacking) {
        const res = await fetch(`${base}/healthz`);
        await res.arrayBuffer();
        if (res.status === 200 && attacking) answered++;
      }
    })();
    try {
      await attack();
    } finally {
      attacking = false;
    }
    await other;
    return answered;
  }

  it('answers while bodies nested two million deep arrive one after another', { timeout: 60_000 }, async () => {
    // Parsed before the depth check, each of these held the process for about 3 s: twenty of them
    // would outlast this test. Refused from their text in one pass, they take milliseconds each.
    const deep = `{"events":${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}}`;
    const statuses: number[] = [];
    const answered = await answeredDuring(async () => {
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${base}/v1/events/batch`, {
          method: 'POST',
          headers: { authorization: `Bearer ${service.token}`, 'content-type': 'application/json' },
          body: deep,
        });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
    });
    expect(statuses).toEqual(Array.from({ length: 20 }, () => 400));
    // The other client was answered while they came. What this test guards is that the twenty are
    // refused at all within its time: parsed first, they would take a minute, the process frozen.
    expect(answered).toBeGreaterThan(0);
  });
});
