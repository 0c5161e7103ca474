import { render, screen, waitFor } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { categoryPage } from '../test/fixtures'
import { bodyOf, encode, mockFetch, problemResponse, sseEvent, streamResponse } from '../test/streams'
import { CategoryGrid } from './CategoryGrid'

describe('CategoryGrid', () => {
  it('shows the tiles, with a notice on the tile whose price failed only', async () => {
    const errors = [{ source: 'items.pricing', reason: 'upstream_status', status: 503, items: ['p-2'], item_count: 1 }]
    const { calls } = mockFetch(() =>
      streamResponse(
        bodyOf([encode(sseEvent('ready', { parts: ['category', 'items'], view: categoryPage }) + sseEvent('done', { errors, stale: [], timing: { total: 9 } }))]),
      ),
    )
    render(<CategoryGrid slug="audio" page={2} />)
    expect(calls[0]?.url).toBe('http://127.0.0.1:8001/api/aggregated/category?slug=audio&limit=24&offset=24')
    await waitFor(() => expect(screen.getByTestId('category-page').getAttribute('data-status')).toBe('done'))
    expect(screen.getByTestId('grid').children).toHaveLength(2)
    expect(screen.getByTestId('tile-link-p-1').getAttribute('href')).toBe('#/product/p-1')
    expect(screen.getByTestId('tile-p-1').textContent).toContain('€49.99')
    expect(screen.queryByTestId('tile-notice-p-1-pricing')).toBeNull()
    expect(screen.getByTestId('tile-notice-p-2-pricing').textContent).toBe('Price unavailable')
    expect(screen.getByTestId('tile-p-2').textContent).toContain('In stock')
    expect(screen.getByTestId('grid-notices').textContent).toContain('Price unavailable for 1 of these products')
  })

  it('says which category was not found', async () => {
    mockFetch(() =>
      problemResponse({ type: 'urn:bff:problem:not-found', title: 'Not found', status: 404, detail: 'category answered 404: the requested item does not exist' }),
    )
    render(<CategoryGrid slug="nope" page={1} />)
    await waitFor(() => expect(screen.getByTestId('error-state').querySelector('h1')?.textContent).toBe('Category not found (404)'))
    expect(screen.getByTestId('category-page').getAttribute('data-status')).toBe('error')
  })
})
