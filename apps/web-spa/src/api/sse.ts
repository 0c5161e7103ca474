/**
 * A small Server-Sent Events parser, as the HTML standard defines the stream format
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
 * for answers read with `fetch` (EventSource cannot send an `Accept` header or be aborted with
 * an AbortController, and gives no access to a non-200 answer's body).
 *
 * Chunks may split the stream anywhere: inside a field name, inside a JSON document, between
 * the CR and the LF of a line ending, or (for `readEventStream`) inside a UTF-8 sequence.
 */

/** One dispatched event. */
export interface SseMessage {
  /** the `event:` field; `message` when there was none */
  event: string
  /** the `data:` lines, joined by `\n` */
  data: string
  /** the last `id:` seen on the stream, if any */
  id?: string
  /** the `retry:` field of this event, if any (milliseconds) */
  retry?: number
}

export interface SseHandlers {
  onMessage: (message: SseMessage) => void
  /** a comment line (`: heartbeat`), without its colon and the space after it */
  onComment?: (text: string) => void
}

const LF = 10
const CR = 13

/** An incremental parser: `feed` it text as it arrives, in chunks of any size. */
export class SseParser {
  private readonly handlers: SseHandlers
  private pending = '' // the current line, not ended yet (holds no CR or LF)
  private afterCR = false // the last chunk ended with CR: an LF starting the next one is its pair
  private started = false
  private eventType = ''
  private data: string[] = []
  private lastId: string | undefined
  private retry: number | undefined

  constructor(handlers: SseHandlers) {
    this.handlers = handlers
  }

  feed(chunk: string): void {
    if (!chunk) return
    if (!this.started) {
      this.started = true
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1)
    }
    if (this.afterCR) {
      // The last chunk ended with CR (a line ended there): an LF now is the rest of a CRLF.
      this.afterCR = false
      if (chunk.charCodeAt(0) === LF) chunk = chunk.slice(1)
    }
    const text = this.pending + chunk
    let start = 0
    for (let i = this.pending.length; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (c !== LF && c !== CR) continue
      this.line(text.slice(start, i))
      if (c === CR) {
        if (i + 1 === text.length) this.afterCR = true
        else if (text.charCodeAt(i + 1) === LF) i++
      }
      start = i + 1
    }
    this.pending = text.slice(start)
  }

  /** The stream ended: a last event without its blank line is dropped, as the standard says. */
  end(): void {
    this.pending = ''
    this.afterCR = false
    this.eventType = ''
    this.data = []
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch()
      return
    }
    const colon = line.indexOf(':')
    if (colon === 0) {
      const text = line.slice(1)
      this.handlers.onComment?.(text.startsWith(' ') ? text.slice(1) : text)
      return
    }
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    switch (field) {
      case 'event':
        this.eventType = value
        break
      case 'data':
        this.data.push(value)
        break
      case 'id':
        if (!value.includes('\0')) this.lastId = value
        break
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value)
        break
      default: // unknown fields are ignored
    }
  }

  private dispatch(): void {
    const { eventType, data, retry } = this
    this.eventType = ''
    this.data = []
    this.retry = undefined
    if (data.length === 0) return
    const message: SseMessage = { event: eventType || 'message', data: data.join('\n') }
    if (this.lastId !== undefined) message.id = this.lastId
    if (retry !== undefined) message.retry = retry
    this.handlers.onMessage(message)
  }
}

/**
 * Read a `text/event-stream` body to its end, calling the handlers as events complete.
 * Resolves when the stream ends. Rejects with the reader's error, or with the signal's reason
 * (an `AbortError`) once `signal` is aborted: the body is then cancelled, which closes the
 * connection, even where the body is not the fetch's own (a service worker's, a test's).
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  handlers: SseHandlers,
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted()
  const parser = new SseParser(handlers)
  const decoder = new TextDecoder('utf-8')
  const reader = body.getReader()
  const cancel = () => {
    reader.cancel(signal?.reason).catch(() => {})
  }
  signal?.addEventListener('abort', cancel, { once: true })
  try {
    for (;;) {
      const { done, value } = await reader.read()
      signal?.throwIfAborted()
      if (done) break
      parser.feed(decoder.decode(value, { stream: true }))
    }
    parser.feed(decoder.decode())
    parser.end()
  } finally {
    signal?.removeEventListener('abort', cancel)
    reader.releaseLock()
  }
}
