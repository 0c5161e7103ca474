/** What the page says about a part: its name, and why it failed. */
import type { FailureReason, PartError } from '../api/types'
import type { AggregateStream } from '../hooks/useAggregateStream'

/** Every reason the BFF gives (a new one fails the typecheck until it is worded here). */
const REASONS: Record<FailureReason, (status?: number | null) => string> = {
  timeout: () => 'it did not arrive in time',
  unavailable: () => 'its service could not be reached',
  upstream_status: (status) => `its service answered with an error${status ? ` (${status})` : ''}`,
  invalid_response: () => 'its service sent an answer that could not be read',
  circuit_open: () => 'its service is paused after repeated failures',
  dependency_failed: () => 'a part it needs failed',
}

export function reasonText(reason: FailureReason | undefined, status?: number | null): string {
  return reason && reason in REASONS ? REASONS[reason](status) : 'it is not available now'
}

/** The notice's words for a part, e.g. `Price unavailable`. */
export const UNAVAILABLE: Record<string, string> = {
  pricing: 'Price unavailable',
  inventory: 'Stock unavailable',
  rating: 'Rating unavailable',
  reviews: 'Reviews unavailable',
  related: 'Related products unavailable',
  category: 'Category unavailable',
}

export function unavailableText(part: string): string {
  return UNAVAILABLE[part] ?? `${part.charAt(0).toUpperCase()}${part.slice(1)} unavailable`
}

export type PartState<T> =
  | { state: 'pending' }
  | { state: 'failed'; reason?: FailureReason; status?: number | null; lost?: boolean }
  | { state: 'ready'; value: T; staleAge?: number }

/** Where one part of a streamed view stands: still pending, failed, or there (maybe stale). */
export function partState<V, K extends keyof V & string>(
  stream: AggregateStream<V>,
  part: K,
): PartState<NonNullable<V[K]>> {
  const value = stream.view[part]
  const reason = stream.failed[part]
  if (reason !== undefined || value === null) {
    const error: PartError | undefined = stream.errors.find((e) => e.source === part)
    return { state: 'failed', reason, status: error?.status }
  }
  if (value === undefined) {
    if (stream.status === 'done') return { state: 'failed' }
    if (stream.status === 'error') return { state: 'failed', lost: true }
    return { state: 'pending' }
  }
  return { state: 'ready', value: value as NonNullable<V[K]>, staleAge: stream.stale[part] }
}
