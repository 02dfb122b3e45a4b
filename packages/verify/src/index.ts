// @countersign/verify: verify the webhooks countersign sends, in any runtime with Web Crypto.
export {
  expressWebhook,
  fastifyWebhook,
  nodeWebhook,
  type ReceiverOptions,
  refusalBody,
  verifyNodeRequest,
} from './middleware.js';
export {
  type VerificationErrorCode,
  type VerifyOptions,
  verifyWebhook,
  type WebhookEvent,
  type WebhookHeaders,
  type WebhookPayload,
  WebhookVerificationError,
} from './verify.js';
