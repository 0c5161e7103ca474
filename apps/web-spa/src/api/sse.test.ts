import { describe, expect, it } from 'vitest'
import { bodyOf, ControlledBody, cutAt, encode } from '../test/streams'
import { readEventStream, SseParser, type SseMessage } from './sse'

function parse(chunks: string[]) {
  const messages: SseMessage[] = []
  const comments: string[] = []
  const parser = new SseParser({
    onMessage: (m) => messages.push(m),
    onComment: (c) => comments.push(c),
  })
  for (const chunk of chunks) parser.feed(chunk)
  parser.end()
  return { messages, comments }
}

const STREAM =
  ': heartbeat\n' +
  'event: ready\ndata: {"parts":["product"],"view":{"product":{"id":"p-1","name":"Café"}}}\n\n' +
  ': heartbeat\n\n' +
  'event: part\ndata: {"part":"pricing","view":{"pricing":{"amount":100}},"stale":false}\n\n' +
  'event: done\ndata: {"errors":[],"stale":[],"timing":{"total":41.0}}\n\n'

const EXPECTED: SseMessage[] = [
  { event: 'ready', data: '{"parts":["product"],"view":{"product":{"id":"p-1","name":"Café"}}}' },
  { event: 'part', data: '{"part":"pricing","view":{"pricing":{"amount":100}},"stale":false}' },
  { event: 'done', data: '{"errors":[],"stale":[],"timing":{"total":41.0}}' },
]

describe('SseParser', () => {
  it('parses named events with one-line JSON data, and comments apart', () => {
    const { messages, comments } = parse([STREAM])
    expect(messages).toEqual(EXPECTED)
    expect(messages.map((m) => JSON.parse(m.data))).toHaveLength(3)
    expect(comments).toEqual(['heartbeat', 'heartbeat'])
  })

  it('gives the same events whatever the chunks: cut anywhere, or a character at a time', () => {
    for (let cut = 0; cut <= STREAM.length; cut++) {
      const { messages } = parse([STREAM.slice(0, cut), STREAM.slice(cut)])
      expect(messages, `cut at ${cut}`).toEqual(EXPECTED)
    }
    expect(parse([...STREAM]).messages).toEqual(EXPECTED)
  })

  it.each([
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('accepts %s line endings, cut anywhere', (_name, eol) => {
    const stream = STREAM.replaceAll('\n', eol)
    for (let cut = 0; cut <= stream.length; cut++) {
      const { messages } = parse([stream.slice(0, cut), stream.slice(cut)])
      expect(messages, `cut at ${cut}`).toEqual(EXPECTED)
    }
  })

  it('takes an LF after a CR that ended the previous chunk as one line end, not a blank line', () => {
    const { messages } = parse(['data: a\r', '\ndata: b\r\n', '\r', '\n'])
    expect(messages).toEqual([{ event: 'message', data: 'a\nb' }])
  })

  it('joins data lines, defaults the name, keeps the last id and a retry', () => {
    const { messages } = parse([
      'data: first\ndata:second\ndata\nid: 7\nretry: 3000\n\n',
      'event: part\ndata:  two spaces\n\n',
    ])
    expect(messages).toEqual([
      { event: 'message', data: 'first\nsecond\n', id: '7', retry: 3000 },
      { event: 'part', data: ' two spaces', id: '7' },
    ])
  })

  it('ignores unknown fields, events without data, a bad retry and a leading BOM', () => {
    const { messages } = parse([
      '\uFEFFevent: ready\nfoo: bar\nretry: soon\n\n',
      'event: part\n\n',
      'data: {}\n\n',
    ])
    expect(messages).toEqual([{ event: 'message', data: '{}' }])
  })

  it('drops a last event that never got its blank line', () => {
    expect(parse(['event: done\ndata: {}\n']).messages).toEqual([])
    expect(parse(['event: done\ndata: {}']).messages).toEqual([])
  })
})

describe('readEventStream', () => {
  it('decodes UTF-8 split inside a character, across chunks', async () => {
    const bytes = encode(STREAM)
    const inside = bytes.indexOf(0xc3) + 1 // between the two bytes of "é"
    const chunks = cutAt(bytes, [3, 9, inside, inside + 5, bytes.length - 1])
    const messages: SseMessage[] = []
    await readEventStream(bodyOf(chunks), { onMessage: (m) => messages.push(m) })
    expect(messages).toEqual(EXPECTED)
  })

  it('cancels the body and rejects with an AbortError when its signal is aborted', async () => {
    const body = new ControlledBody()
    const controller = new AbortController()
    const messages: SseMessage[] = []
    const reading = readEventStream(body.stream, { onMessage: (m) => messages.push(m) }, controller.signal)
    body.send('event: ready\ndata: {}\n\n')
    await new Promise((resolve) => setTimeout(resolve, 0))
    controller.abort()
    await expect(reading).rejects.toMatchObject({ name: 'AbortError' })
    expect(messages).toHaveLength(1)
    expect(body.cancelled).toBe(true)
  })

  it('does not start reading with a signal already aborted', async () => {
    const body = new ControlledBody()
    const controller = new AbortController()
    controller.abort()
    await expect(readEventStream(body.stream, { onMessage: () => {} }, controller.signal)).rejects.toMatchObject({
      name: 'AbortError',
    })
    expect(body.stream.locked).toBe(false)
  })
})
