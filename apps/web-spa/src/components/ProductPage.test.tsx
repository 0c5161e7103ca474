import { act, render, screen, waitFor } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { inventory, pricing, product, reviews, tile } from '../test/fixtures'
import { ControlledBody, mockFetch, problemResponse, sseEvent, streamResponse } from '../test/streams'
import { ProductPage } from './ProductPage'

const root = () => screen.getByTestId('product-page')
const panelState = (testId: string) => screen.getByTestId(testId).getAttribute('data-state')

describe('ProductPage', () => {
  it('shows the product at ready, then fills each panel in as its event arrives', async () => {
    const body = new ControlledBody()
    const { calls } = mockFetch(() => streamResponse(body.stream))
    render(<ProductPage id="p-1001" />)
    expect(root().getAttribute('data-status')).toBe('loading')
    expect(screen.queryByTestId('product-name')).toBeNull()
    expect(calls[0]?.url).toBe(
      'http://127.0.0.1:8001/api/aggregated/product?id=p-1001&fields=product%2Cinventory%2Cpricing%2Creviews%2Crelated',
    )

    await act(async () => body.send(sseEvent('ready', { parts: ['product'], view: { product } })))
    await waitFor(() => expect(screen.getByTestId('product-name').textContent).toBe(product.name))
    expect(root().getAttribute('data-status')).toBe('streaming')
    expect(panelState('price')).toBe('pending')
    expect(panelState('stock')).toBe('pending')
    expect(panelState('reviews')).toBe('pending')

    await act(async () => body.send(sseEvent('part', { part: 'pricing', view: { pricing }, stale: true, age: 12.3 })))
    await waitFor(() => expect(panelState('price')).toBe('ready'))
    expect(screen.getByTestId('price').textContent).toContain('€212.49') // 249.99 less 15 %
    expect(screen.getByTestId('price').querySelector('s')?.textContent).toBe('€249.99')
    expect(screen.getByTestId('stale-pricing').textContent).toContain('12 s')
    expect(panelState('stock')).toBe('pending')

    await act(async () => {
      body.send(sseEvent('part', { part: 'inventory', view: { inventory }, stale: false }))
      body.send(sseEvent('failed', { source: 'reviews', reason: 'timeout', view: { reviews: null } }))
      body.send(sseEvent('part', { part: 'related', view: { related: [tile('p-1002', { price: null, failed: ['pricing'] })] }, stale: false }))
    })
    await waitFor(() => expect(panelState('reviews')).toBe('failed'))
    expect(screen.getByTestId('part-notice-reviews').textContent).toBe(
      '!Reviews unavailable: it did not arrive in time.',
    )
    expect(screen.getByTestId('stock').textContent).toContain('In stock')
    expect(screen.queryByTestId('stale-inventory')).toBeNull()
    expect(screen.getByTestId('tile-notice-p-1002-pricing').textContent).toBe('Price unavailable')

    await act(async () => {
      body.send(sseEvent('done', { errors: [{ source: 'reviews', reason: 'timeout' }], stale: [{ source: 'pricing', age: 12.3 }], timing: { product: 12.1, total: 41 } }))
      body.close()
    })
    await waitFor(() => expect(root().getAttribute('data-status')).toBe('done'))
    expect(screen.getByTestId('timing').textContent).toContain('Answered in 41 ms')
  })

  it('shows the reviews when they arrive', async () => {
    const body = new ControlledBody()
    mockFetch(() => streamResponse(body.stream))
    render(<ProductPage id="p-1001" />)
    await act(async () => {
      body.send(sseEvent('ready', { parts: ['product'], view: { product } }))
      body.send(sseEvent('part', { part: 'reviews', view: { reviews }, stale: false }))
    })
    await waitFor(() => expect(panelState('reviews')).toBe('ready'))
    expect(screen.getByTestId('reviews').textContent).toContain('1,284 reviews')
    expect(screen.getByTestId('reviews').textContent).toContain('Zoë')
  })

  it('says which product was not found', async () => {
    mockFetch(() =>
      problemResponse({
        type: 'urn:bff:problem:not-found',
        title: 'Not found',
        status: 404,
        detail: 'product answered 404: the requested item does not exist',
      }),
    )
    render(<ProductPage id="nope" />)
    await waitFor(() => expect(root().getAttribute('data-status')).toBe('error'))
    const error = screen.getByTestId('error-state')
    expect(error.querySelector('h1')?.textContent).toBe('Product not found (404)')
    expect(error.textContent).toContain('the requested item does not exist')
    expect(screen.queryByRole('button', { name: 'Try again' })).toBeNull()
  })

  it('offers to try again after a gateway error', async () => {
    mockFetch(() =>
      problemResponse({ type: 'urn:bff:problem:upstream-timeout', title: 'Upstream timeout', status: 504, detail: 'critical part product did not answer in time' }),
    )
    render(<ProductPage id="p-1004" />)
    await waitFor(() => expect(screen.getByTestId('error-state').querySelector('h1')?.textContent).toBe('Upstream timeout (504)'))
    expect(screen.getByRole('button', { name: 'Try again' })).toBeTruthy()
  })
})
