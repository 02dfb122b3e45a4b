// Assertions on the one error shape every route answers with: {"error":{"code","message","details"?}}.
import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';

export function expectError(
  res: LightMyRequestResponse,
  status: number,
  code: string,
): { code: string; message: string } {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json();
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  return body.error;
}

/** A 400 whose message names `field`. */
export function expectFieldError(res: LightMyRequestResponse, field: string): void {
  const error = expectError(res, 400, 'validation_failed');
  expect(error.message).toContain(field);
}

/** The seed's 401: "Your API token is invalid or expired", with a Bearer challenge. */
export function expectUnauthorized(res: LightMyRequestResponse): void {
  const error = expectError(res, 401, 'unauthorized');
  expect(error.message).toContain('invalid or expired');
  expect(res.headers['www-authenticate']).toBe('Bearer');
}
