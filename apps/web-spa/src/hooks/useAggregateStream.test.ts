import { act, renderHook, waitFor } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import type { ProductPage } from '../api/types'
import { inventory, pricing, product, reviews } from '../test/fixtures'
import {
  bodyOf,
  ControlledBody,
  cutAt,
  encode,
  jsonResponse,
  mockFetch,
  problemResponse,
  sseEvent,
  streamResponse,
} from '../test/streams'
import { CLIENT_PROBLEM, useAggregateStream } from './useAggregateStream'

const URL_1 = 'http://bff.test/api/aggregated/product?id=p-1001'
const URL_2 = 'http://bff.test/api/aggregated/product?id=p-1002'

const READY = sseEvent('ready', { parts: ['product'], view: { product } })
const PRICING = sseEvent('part', { part: 'pricing', view: { pricing }, stale: false })
const INVENTORY = sseEvent('part', { part: 'inventory', view: { inventory }, stale: true, age: 12.3 })
const REVIEWS_FAILED = sseEvent('failed', {
  source: 'reviews',
  reason: 'upstream_status',
  status: 503,
  view: { reviews: null },
})
const DONE = sseEvent('done', {
  errors: [{ source: 'reviews', reason: 'upstream_status', status: 503 }],
  stale: [{ source: 'inventory', age: 12.3 }],
  timing: { product: 12.1, pricing: 30.2, inventory: 8.4, reviews: 35.0, total: 41.0 },
})

const useProductStream = (url: string | null) => useAggregateStream<ProductPage>(url)

describe('useAggregateStream', () => {
  it('asks for an event stream and merges the events, in chunks cut at awkward places', async () => {
    const text = `: heartbeat\n\n${READY}${PRICING}: heartbeat\n\n${INVENTORY}${REVIEWS_FAILED}${DONE}`
    const bytes = encode(text)
    const cuts = [
      2, // inside the heartbeat comment
      text.indexOf('event: ready') + 3, // inside "event:"
      bytes.indexOf(0xc3) + 1, // inside the UTF-8 of "é" in the product's name
      text.indexOf('\n\nevent: part') + 1, // between the two LFs that end an event
      text.indexOf('"pricing":{') + 5, // inside the JSON
      text.indexOf('event: failed') - 1, // just before an event
      bytes.length - 2, // before the last blank line
    ]
    const { calls } = mockFetch(() => streamResponse(bodyOf(cutAt(bytes, cuts))))
    const { result } = renderHook(() => useProductStream(URL_1))
    expect(result.current.status).toBe('loading')

    await waitFor(() => expect(result.current.status).toBe('done'))
    expect(calls).toHaveLength(1)
    expect(calls[0]?.url).toBe(URL_1)
    expect(new Headers(calls[0]?.init.headers).get('accept')).toBe('text/event-stream')
    expect(calls[0]?.init.signal).toBeInstanceOf(AbortSignal)

    const state = result.current
    expect(state.view).toEqual({ product, pricing, inventory, reviews: null })
    expect(state.failed).toEqual({ reviews: 'upstream_status' })
    expect(state.stale).toEqual({ inventory: 12.3 })
    expect(state.errors).toEqual([{ source: 'reviews', reason: 'upstream_status', status: 503 }])
    expect(state.timing?.total).toBe(41.0)
    expect(state.problem).toBeUndefined()
  })

  it('is streaming from ready on, each part filling in as its event arrives', async () => {
    const body = new ControlledBody()
    mockFetch(() => streamResponse(body.stream))
    const { result } = renderHook(() => useProductStream(URL_1))

    await act(async () => body.send(READY.slice(0, 20)))
    expect(result.current.status).toBe('loading')
    await act(async () => body.send(READY.slice(20)))
    await waitFor(() => expect(result.current.status).toBe('streaming'))
    expect(result.current.view).toEqual({ product })

    await act(async () => body.send(PRICING))
    await waitFor(() => expect(result.current.view.pricing).toEqual(pricing))
    expect(result.current.view.reviews).toBeUndefined()
    expect(result.current.status).toBe('streaming')

    await act(async () => body.send(sseEvent('failed', { source: 'reviews', reason: 'timeout', view: { reviews: null } })))
    await waitFor(() => expect(result.current.failed.reviews).toBe('timeout'))
    expect(result.current.view.reviews).toBeNull()

    await act(async () => {
      body.send(sseEvent('done', { errors: [{ source: 'reviews', reason: 'timeout' }], stale: [], timing: { total: 5 } }))
      body.close()
    })
    await waitFor(() => expect(result.current.status).toBe('done'))
  })

  it('reads a problem answer: status error, the problem as the BFF sent it', async () => {
    const problem = {
      type: 'urn:bff:problem:not-found',
      title: 'Not found',
      status: 404,
      detail: 'product answered 404: the requested item does not exist',
    }
    mockFetch(() => problemResponse(problem))
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('error'))
    expect(result.current.problem).toEqual(problem)
    expect(result.current.view).toEqual({})
  })

  it('makes a problem of an error answer without a problem document', async () => {
    mockFetch(() => new Response('<h1>Bad gateway</h1>', { status: 502, statusText: 'Bad Gateway' }))
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('error'))
    expect(result.current.problem).toMatchObject({ status: 502, title: 'Bad Gateway' })
  })

  it('aborts the request and cancels the stream on unmount', async () => {
    const body = new ControlledBody()
    const { calls } = mockFetch(() => streamResponse(body.stream))
    const { result, unmount } = renderHook(() => useProductStream(URL_1))
    await act(async () => body.send(READY))
    await waitFor(() => expect(result.current.status).toBe('streaming'))

    unmount()
    expect(calls[0]?.init.signal?.aborted).toBe(true)
    await waitFor(() => expect(body.cancelled).toBe(true))
  })

  it('aborts the old stream when the URL changes, and never shows its view for the new one', async () => {
    const bodies = new Map([
      [URL_1, new ControlledBody()],
      [URL_2, new ControlledBody()],
    ])
    const { calls } = mockFetch((url) => streamResponse(bodies.get(url)!.stream))
    const { result, rerender } = renderHook(({ url }) => useProductStream(url), {
      initialProps: { url: URL_1 },
    })
    await act(async () => bodies.get(URL_1)!.send(READY))
    await waitFor(() => expect(result.current.view.product?.id).toBe('p-1001'))

    rerender({ url: URL_2 })
    expect(result.current.status).toBe('loading')
    expect(result.current.view).toEqual({})
    expect(calls[0]?.init.signal?.aborted).toBe(true)
    await waitFor(() => expect(bodies.get(URL_1)!.cancelled).toBe(true))

    const other = { ...product, id: 'p-1002' }
    await act(async () => bodies.get(URL_2)!.send(sseEvent('ready', { parts: ['product'], view: { product: other } })))
    await waitFor(() => expect(result.current.view.product?.id).toBe('p-1002'))
    expect(calls.map((c) => c.url)).toEqual([URL_1, URL_2])
  })

  it('ends in error, keeping what arrived, when the stream stops before done', async () => {
    mockFetch(() => streamResponse(bodyOf([encode(READY + PRICING)])))
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('error'))
    expect(result.current.problem?.type).toBe(CLIENT_PROBLEM.interrupted)
    expect(result.current.problem?.status).toBe(0)
    expect(result.current.view).toEqual({ product, pricing })
  })

  it('ends in error when an event does not parse', async () => {
    mockFetch(() => streamResponse(bodyOf([encode('event: ready\ndata: {"view": \n\n')])))
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('error'))
    expect(result.current.problem?.type).toBe(CLIENT_PROBLEM.invalid)
  })

  it('ignores events it does not know', async () => {
    mockFetch(() => streamResponse(bodyOf([encode(sseEvent('progress', { n: 1 }) + READY + DONE)])))
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('done'))
    expect(result.current.view.product).toEqual(product)
  })

  it('takes a whole JSON answer (a BFF without streaming) as ready and done at once', async () => {
    mockFetch(() =>
      jsonResponse({
        product,
        inventory,
        pricing,
        reviews: null,
        errors: [{ source: 'reviews', reason: 'timeout' }],
        stale: [{ source: 'pricing', age: 3 }],
      }),
    )
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('done'))
    expect(result.current.view).toEqual({ product, inventory, pricing, reviews: null })
    expect(result.current.failed).toEqual({ reviews: 'timeout' })
    expect(result.current.stale).toEqual({ pricing: 3 })
  })

  it('reports an unreachable BFF as a problem of its own', async () => {
    mockFetch(() => {
      throw new TypeError('Failed to fetch')
    })
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('error'))
    expect(result.current.problem).toMatchObject({ type: CLIENT_PROBLEM.network, status: 0 })
  })

  it('asks again on retry', async () => {
    let answers = 0
    mockFetch(() => {
      answers++
      return answers === 1
        ? problemResponse({ type: 'urn:bff:problem:upstream-timeout', title: 'Upstream timeout', status: 504, detail: '' })
        : streamResponse(bodyOf([encode(READY + sseEvent('part', { part: 'reviews', view: { reviews }, stale: false }) + DONE)]))
    })
    const { result } = renderHook(() => useProductStream(URL_1))
    await waitFor(() => expect(result.current.status).toBe('error'))
    act(() => result.current.retry())
    await waitFor(() => expect(result.current.status).toBe('done'))
    expect(result.current.problem).toBeUndefined()
    expect(result.current.view.reviews).toEqual(reviews)
  })

  it('asks nothing for a null URL', () => {
    const { calls } = mockFetch(() => jsonResponse({}))
    const { result } = renderHook(() => useProductStream(null))
    expect(result.current.status).toBe('loading')
    expect(calls).toHaveLength(0)
  })
})
