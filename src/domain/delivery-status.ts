// The statuses a delivery goes through, listed once: the store's column type, the API's enum, the
// CLI's choices and the queue metrics all read this list.
export const DELIVERY_STATUSES = [
  'pending',
  'sending',
  'delivered',
  'failed',
  'held',
  'cancelled',
  'waiting',
  'postponed',
] as const;

export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];
