/** Test doubles for the BFF's answers: event streams cut at chosen places, problems, JSON. */
import { vi } from 'vitest'

const encoder = new TextEncoder()

/** One event as the BFF writes it. */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** `bytes` cut at the given byte offsets (anywhere: inside a UTF-8 sequence too). */
export function cutAt(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = []
  let start = 0
  for (const offset of [...offsets].sort((a, b) => a - b)) {
    chunks.push(bytes.slice(start, offset))
    start = offset
  }
  chunks.push(bytes.slice(start))
  return chunks.filter((chunk) => chunk.length > 0)
}

/** A body whose chunks the test sends one by one, and whose cancellation it can see. */
export class ControlledBody {
  readonly stream: ReadableStream<Uint8Array>
  cancelled = false
  cancelReason: unknown
  private controller!: ReadableStreamDefaultController<Uint8Array>

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller
      },
      cancel: (reason) => {
        this.cancelled = true
        this.cancelReason = reason
      },
    })
  }

  send(chunk: string | Uint8Array): void {
    this.controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk)
  }

  close(): void {
    this.controller.close()
  }
}

/** A body that yields `chunks` and ends. */
export function bodyOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let next = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[next++]
      if (chunk === undefined) controller.close()
      else controller.enqueue(chunk)
    },
  })
}

export function streamResponse(body: ReadableStream<Uint8Array>): Response {
  return new Response(body, {
    status: 200,
    headers: { 'content-type': 'text/event-stream; charset=utf-8' },
  })
}

export function problemResponse(problem: { type: string; title: string; status: number; detail: string }) {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { 'content-type': 'application/problem+json' },
  })
}

export function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status: 200,
    headers: { 'content-type': 'application/json' },
  })
}

export type FetchHandler = (url: string, init: RequestInit) => Response | Promise<Response>

/** Replace `fetch` (restored after each test by `unstubGlobals`); `calls` has what was asked. */
export function mockFetch(handler: FetchHandler) {
  const calls: { url: string; init: RequestInit }[] = []
  const fetch = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = String(input)
    calls.push({ url, init })
    init.signal?.throwIfAborted()
    return handler(url, init)
  })
  vi.stubGlobal('fetch', fetch)
  return { fetch, calls }
}

export const encode = (text: string) => encoder.encode(text)
