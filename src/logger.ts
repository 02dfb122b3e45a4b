// pino, with every place a secret could appear redacted before it is written.
import pino, { type Logger } from 'pino';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'password',
  'bearerToken',
  'secret_token',
  'signing_secret',
  'token',
  '*.password',
  '*.bearerToken',
  '*.secret_token',
  '*.signing_secret',
  '*.token',
  '*.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, base: { service: 'countersign' } },
    destination,
  );
}
