import { act, render, screen, waitFor } from '@testing-library/react'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { signIn } from './api/session'
import type { CartPage } from './api/types'
import App from './App'
import { categoryPage } from './test/fixtures'
import { authorizationOf, identityAnswer, signOutAfterEach, tokenOf } from './test/session'
import { bodyOf, encode, jsonResponse, mockFetch, problemResponse, sseEvent, streamResponse } from './test/streams'

const BFF = 'http://127.0.0.1:8001'

/** web-bff for a category page and one user's cart, kept here as the cart service would. */
function shop(options: { failPut?: boolean } = {}) {
  const lines = new Map<string, number>()
  const cart = (): CartPage => ({
    lines: [...lines].map(([product_id, quantity]) => ({ product_id, quantity, product: null })),
    count: lines.size,
    total: null,
    priced: 0,
  })
  return mockFetch((url, init) => {
    const signedIn = identityAnswer(url, init)
    if (signedIn) return signedIn
    if (url.startsWith(`${BFF}/api/aggregated/category?`)) {
      const events = sseEvent('ready', { parts: ['category', 'items'], view: categoryPage })
      return streamResponse(bodyOf([encode(events + sseEvent('done', { errors: [], stale: [], timing: { total: 5 } }))]))
    }
    if (authorizationOf(init) !== `Bearer ${tokenOf('alice')}`) throw new Error(`no token: ${url}`)
    if (url === `${BFF}/api/aggregated/cart`) return jsonResponse(cart())
    const put = url.match(/\/api\/cart\/items\/([^/]+)$/)
    if (put && init.method === 'PUT') {
      if (options.failPut) {
        return problemResponse({ type: 'urn:bff:problem:upstream-error', title: 'Cart unavailable', status: 502, detail: 'cart answered 503' })
      }
      const { quantity } = JSON.parse(String(init.body)) as { quantity: number }
      lines.set(decodeURIComponent(put[1]!), quantity)
      return jsonResponse(cart())
    }
    throw new Error(`unexpected request: ${init.method ?? 'GET'} ${url}`)
  })
}

describe('App: "Add to cart" on a category tile', () => {
  signOutAfterEach()
  beforeEach(() => {
    vi.spyOn(window, 'scrollTo').mockImplementation(() => {}) // jsdom has none; App scrolls up
  })
  afterEach(() => {
    window.location.hash = ''
  })

  it('adds one more of the product, the header counts it, and the page stays', async () => {
    const { calls } = shop()
    await signIn('alice')
    window.location.hash = '#/category/audio'
    render(<App />)
    await waitFor(() => expect(screen.getByTestId('cart-count').textContent).toBe('0'))
    const add = await screen.findByTestId('add-to-cart-p-1')
    expect(add.getAttribute('aria-label')).toBe('Add to cart: Product p-1')
    expect(add.closest('a')).toBeNull() // beside the tile's link, not inside it

    await waitFor(() => expect((add as HTMLButtonElement).disabled).toBe(false))
    act(() => add.click())
    await waitFor(() => expect(screen.getByTestId('cart-count').textContent).toBe('1'))
    expect(screen.getByTestId('in-cart-p-1').textContent).toBe('1 in cart')
    act(() => screen.getByTestId('add-to-cart-p-1').click())
    await waitFor(() => expect(screen.getByTestId('cart-count').textContent).toBe('2'))
    expect(screen.getByTestId('in-cart-p-1').textContent).toBe('2 in cart')
    expect(screen.queryByTestId('in-cart-p-2')).toBeNull()

    const puts = calls.filter((call) => call.init.method === 'PUT')
    expect(puts.map((call) => [call.url, call.init.body])).toEqual([
      [`${BFF}/api/cart/items/p-1`, '{"quantity":1}'],
      [`${BFF}/api/cart/items/p-1`, '{"quantity":2}'],
    ])
    expect(window.location.hash).toBe('#/category/audio') // the click did not open the product
    expect(screen.getByTestId('category-page')).toBeTruthy()
  })

  it('shows a failed add on that tile only, and the count stays', async () => {
    shop({ failPut: true })
    await signIn('alice')
    window.location.hash = '#/category/audio'
    render(<App />)
    const add = await screen.findByTestId('add-to-cart-p-2')
    await waitFor(() => expect((add as HTMLButtonElement).disabled).toBe(false))
    act(() => add.click())
    const problem = await screen.findByTestId('cart-problem-p-2')
    expect(problem.textContent).toContain('Cart unavailable (502)')
    expect(screen.queryByTestId('cart-problem-p-1')).toBeNull()
    expect(screen.getByTestId('cart-count').textContent).toBe('0')
  })

  it('signed out, a tile asks to sign in instead', async () => {
    shop()
    window.location.hash = '#/category/audio'
    render(<App />)
    expect((await screen.findByTestId('sign-in-to-buy-p-1')).textContent).toBe('Sign in to add to a cart')
    expect(screen.queryByTestId('add-to-cart-p-1')).toBeNull()
    expect(screen.queryByTestId('cart-count')).toBeNull()
  })
})
