/**
 * `useAggregateStream(url)`: one of web-bff's aggregate answers, streamed.
 *
 * The request asks for `text/event-stream`. Nothing comes until the critical parts arrived;
 * then `ready` carries the view's fields they fill, each optional part follows as `part` (or
 * `failed`), and `done` ends the answer with its errors, stale parts and timings. The view is
 * merged event by event (`{...view, ...event.view}`), so a page renders the product as soon as
 * it is known and fills the rest in as it arrives.
 *
 * A non-2xx answer is a problem document (RFC 9457): status `error`, `problem` set. A BFF that
 * answers the whole view as JSON instead (no streaming) is taken as `ready` + `done` at once.
 * The request is aborted on unmount and when `url` changes: leaving a page closes its stream.
 *
 * `token` (a signed-in user's access token) is sent as `Authorization: Bearer`; a change of
 * token (signing in or out) asks again, and a 401 for a token drops the session (the BFF no
 * longer takes it), which asks again as nobody.
 */
import { useCallback, useEffect, useReducer, useState } from 'react'
import { isStreamEventName, type StreamEvent } from '../api/events'
import { readEventStream, type SseMessage } from '../api/sse'
import { signOut } from '../api/session'
import type { FailureReason, PartError, Problem, StalePart } from '../api/types'

export type StreamStatus = 'loading' | 'streaming' | 'done' | 'error'

export interface AggregateStream<V> {
  /** `loading` until `ready`, `streaming` until `done`, or `error` (see `problem`) */
  status: StreamStatus
  /** the view so far: the fields of every event received, merged */
  view: Partial<V>
  /** the parts that failed, and why */
  failed: Partial<Record<string, FailureReason>>
  /** the parts served from the cache past their freshness, and their age in seconds */
  stale: Partial<Record<string, number>>
  /** the parts' errors as the BFF reported them (with the upstream's status, the items) */
  errors: PartError[]
  /** why the answer failed: the BFF's problem document, or one made here (network, stream) */
  problem?: Problem
  /** each part's duration and the total, in milliseconds (from `done`) */
  timing?: Record<string, number>
}

export interface AggregateStreamHandle<V> extends AggregateStream<V> {
  /** ask again (after an error): the state starts over from `loading` */
  retry: () => void
}

/** The problem types this client makes itself, for failures that have no problem document. */
export const CLIENT_PROBLEM = {
  network: 'urn:web-spa:problem:network',
  interrupted: 'urn:web-spa:problem:stream-interrupted',
  invalid: 'urn:web-spa:problem:invalid-answer',
} as const

/** What one request asks for: its URL, and whose token it carries. */
interface Request {
  url: string
  token: string | null
}

interface State<V> extends AggregateStream<V> {
  /** the request this state answers (`url` and token): an answer to another is dropped */
  key: string | null
}

type Action<V> =
  | { type: 'reset'; key: string | null }
  | { type: 'event'; key: string; event: StreamEvent<V> }
  | { type: 'whole'; key: string; page: Partial<V> & WholeAnswerExtras }
  | { type: 'problem'; key: string; problem: Problem }

interface WholeAnswerExtras {
  errors?: PartError[]
  stale?: StalePart[]
}

function requestKey(url: string | null, token: string | null): string | null {
  return url === null ? null : JSON.stringify([url, token])
}

function initialState<V>(key: string | null): State<V> {
  return { key, status: 'loading', view: {}, failed: {}, stale: {}, errors: [] }
}

function withReported<V>(state: State<V>, errors: PartError[], stale: StalePart[]): State<V> {
  const failed = { ...state.failed }
  for (const error of errors) failed[error.source] ??= error.reason
  const staleAges = { ...state.stale }
  for (const part of stale) staleAges[part.source] ??= part.age
  return { ...state, failed, stale: staleAges, errors }
}

function reduce<V>(state: State<V>, action: Action<V>): State<V> {
  if (action.type === 'reset') return initialState(action.key)
  if (action.key !== state.key) return state // a late answer to a URL (or user) left behind
  switch (action.type) {
    case 'problem':
      return { ...state, status: 'error', problem: action.problem }
    case 'whole': {
      const { errors = [], stale = [], ...view } = action.page
      const whole = { ...state, status: 'done' as const, view: view as Partial<V> }
      return withReported(whole, errors, stale)
    }
    case 'event':
      return reduceEvent(state, action.event)
  }
}

function reduceEvent<V>(state: State<V>, { event, data }: StreamEvent<V>): State<V> {
  switch (event) {
    case 'ready':
      return { ...state, status: 'streaming', view: { ...state.view, ...data.view } }
    case 'part':
      return {
        ...state,
        status: 'streaming',
        view: { ...state.view, ...data.view },
        stale: data.stale ? { ...state.stale, [data.part]: data.age ?? 0 } : state.stale,
      }
    case 'failed': {
      const { view, ...error } = data // like an `errors` entry
      return {
        ...state,
        status: 'streaming',
        view: { ...state.view, ...view },
        failed: { ...state.failed, [data.source]: data.reason },
        errors: [...state.errors, error],
      }
    }
    case 'done':
      return {
        ...withReported(state, data.errors ?? [], data.stale ?? []),
        status: 'done',
        timing: data.timing,
      }
  }
}

/** A problem found by this client, not answered by the BFF: its status is 0. */
export function clientProblem(type: string, title: string, detail: string): Problem {
  return { type, title, status: 0, detail }
}

function isProblem(value: unknown): value is Problem {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Problem).title === 'string' &&
    typeof (value as Problem).status === 'number'
  )
}

/** A non-2xx answer's problem document, or one made from its status when it has none. */
export async function readProblem(response: Response): Promise<Problem> {
  const text = await response.text()
  try {
    const body: unknown = JSON.parse(text)
    if (isProblem(body)) return { ...body, detail: body.detail ?? '', type: body.type ?? 'about:blank' }
  } catch {
    // not JSON: described below
  }
  return {
    type: 'about:blank',
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    detail: text.slice(0, 300),
  }
}

/** A stream message as one of the BFF's events; `null` for names this client does not know. */
export function toStreamEvent<V>(message: SseMessage): StreamEvent<V> | null {
  if (!isStreamEventName(message.event)) return null
  return { event: message.event, data: JSON.parse(message.data) } as StreamEvent<V>
}

async function fetchAggregate<V>(
  { url, token }: Request,
  key: string,
  signal: AbortSignal,
  dispatch: (action: Action<V>) => void,
): Promise<void> {
  const send = (action: Action<V>) => {
    if (!signal.aborted) dispatch(action)
  }
  const headers: Record<string, string> = { Accept: 'text/event-stream' }
  if (token !== null) headers.Authorization = `Bearer ${token}`
  let response: Response
  try {
    response = await fetch(url, { headers, signal })
  } catch (error) {
    send({
      type: 'problem',
      key,
      problem: clientProblem(
        CLIENT_PROBLEM.network,
        'BFF unreachable',
        `No answer from ${new URL(url, window.location.href).origin}: ${String(error)}`,
      ),
    })
    return
  }
  let finished = false
  try {
    if (!response.ok) {
      const problem = await readProblem(response)
      // A token the BFF no longer takes (expired, or the provider restarted): sign in again.
      if (response.status === 401 && token !== null && !signal.aborted) signOut()
      send({ type: 'problem', key, problem })
      return
    }
    const contentType = response.headers.get('content-type') ?? ''
    if (contentType.startsWith('text/event-stream') && response.body) {
      await readEventStream(
        response.body,
        {
          onMessage(message) {
            const event = toStreamEvent<V>(message)
            if (event === null) return
            if (event.event === 'done') finished = true
            send({ type: 'event', key, event })
          },
        },
        signal,
      )
      if (!finished) {
        send({
          type: 'problem',
          key,
          problem: clientProblem(
            CLIENT_PROBLEM.interrupted,
            'Connection lost',
            'The answer ended before all its parts arrived',
          ),
        })
      }
    } else if (contentType.includes('json')) {
      send({ type: 'whole', key, page: await response.json() })
    } else {
      send({
        type: 'problem',
        key,
        problem: clientProblem(
          CLIENT_PROBLEM.invalid,
          'Invalid answer',
          `Expected an event stream or JSON, got ${JSON.stringify(contentType)}`,
        ),
      })
    }
  } catch (error) {
    if (signal.aborted) return
    const invalid = error instanceof SyntaxError // an event's data, or the JSON, did not parse
    send({
      type: 'problem',
      key,
      problem: clientProblem(
        invalid ? CLIENT_PROBLEM.invalid : CLIENT_PROBLEM.interrupted,
        invalid ? 'Invalid answer' : 'Connection lost',
        String(error),
      ),
    })
  }
}

export interface AggregateStreamOptions {
  /** the signed-in user's access token, sent as a bearer token (`null`: nobody signed in) */
  token?: string | null
}

/** Stream the aggregate at `url` (`null`: nothing to ask for); see the module's comment. */
export function useAggregateStream<V>(
  url: string | null,
  { token = null }: AggregateStreamOptions = {},
): AggregateStreamHandle<V> {
  const key = requestKey(url, token)
  const [state, dispatch] = useReducer(reduce<V>, key, initialState<V>)
  const [attempt, setAttempt] = useState(0)
  const retry = useCallback(() => setAttempt((n) => n + 1), [])
  useEffect(() => {
    dispatch({ type: 'reset', key })
    if (url === null || key === null) return
    const controller = new AbortController()
    void fetchAggregate<V>({ url, token }, key, controller.signal, dispatch)
    return () => controller.abort()
  }, [url, token, key, attempt])
  // Until the effect has reset the state for a new request, the old one's state is not shown.
  const { key: _, ...current } = state.key === key ? state : initialState<V>(key)
  return { ...current, retry }
}
