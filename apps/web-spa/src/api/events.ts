/**
 * The events of web-bff's streamed answers (`Accept: text/event-stream` on every aggregate
 * route): `ready` once, then one `part` or `failed` per optional part in the order they end,
 * then `done`; in SSE a heartbeat is a comment (`: heartbeat`), not an event.
 *
 * The envelopes are the generated ones: the OpenAPI document describes the events on each
 * aggregate route's 200 answer (`text/event-stream`). The one thing written by hand here is
 * `view`: the document types it as any object ("fields of the answer's view, to merge into
 * it"), which the generator makes `Record<string, never>`; here it is the route's own view
 * (`ProductPage`, `CategoryPage`), partial. Everything else imports `StreamEventData` and
 * `StreamEvent` from this file only.
 */
import type { paths } from './schema'

/** The stream as the document describes it (the same on every aggregate route). */
type DocumentedStream =
  paths['/api/aggregated/product']['get']['responses'][200]['content']['text/event-stream']

/** One event of it (the document may describe the stream as one event, or as their list). */
type DocumentedEvent = DocumentedStream extends readonly (infer E)[] ? E : DocumentedStream

type Documented<E extends DocumentedEvent['event']> =
  Extract<DocumentedEvent, { event: E }> extends { data: infer D } ? D : never

/** A documented event's data, its `view` typed as the fields of the view `V` it carries. */
type WithView<D, V> = Omit<D, 'view'> & { view: Partial<V> }

/** The data of each event a client acts on, by event name, for a view `V`. */
export interface StreamEventData<V> {
  /** First, once: the view's fields that the critical parts fill. */
  ready: WithView<Documented<'ready'>, V>
  /** An optional part arrived (from its upstream, or from the cache: then `stale` and `age`). */
  part: WithView<Documented<'part'>, V>
  /** An optional part failed (like an `errors` entry): its field in `view` is `null`. */
  failed: WithView<Documented<'failed'>, V>
  /** Last: the whole answer's errors and stale parts, and each part's duration in ms. */
  done: Documented<'done'>
}

export type StreamEventName = keyof StreamEventData<unknown>

/** One event of a stream, discriminated by its name. */
export type StreamEvent<V> = {
  [E in StreamEventName]: { event: E; data: StreamEventData<V>[E] }
}[StreamEventName]

export const STREAM_EVENT_NAMES: readonly StreamEventName[] = ['ready', 'part', 'failed', 'done']

export function isStreamEventName(name: string): name is StreamEventName {
  return (STREAM_EVENT_NAMES as readonly string[]).includes(name)
}
