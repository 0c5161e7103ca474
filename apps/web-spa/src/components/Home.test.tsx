import { act, render, screen, waitFor, within } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { signIn, signOut, useSession } from '../api/session'
import type { HomePage } from '../api/types'
import { tile } from '../test/fixtures'
import { authorizationOf, identityAnswer, signOutAfterEach, tokenOf } from '../test/session'
import { bodyOf, ControlledBody, encode, mockFetch, problemResponse, sseEvent, streamResponse } from '../test/streams'
import { Home } from './Home'

const HOME_URL = 'http://127.0.0.1:8001/api/aggregated/home?limit=12'

/** The home page's whole answer, streamed: `ready` with every part, then `done`. */
function homeStream(view: HomePage, errors: unknown[] = []): Response {
  const { errors: _, stale: __, ...parts } = view
  const events = sseEvent('ready', { parts: ['recommendations', 'items'], view: parts })
  return streamResponse(bodyOf([encode(events + sseEvent('done', { errors, stale: [], timing: { total: 7 } }))]))
}

const bestSellers: HomePage = { picks: 'best_sellers', items: [tile('p-best-1'), tile('p-best-2')] }
const alicesPicks: HomePage = { picks: 'personal', items: [tile('p-alice-1'), tile('p-alice-2'), tile('p-alice-3')] }

/** The BFF: the best sellers for a request without a token, Alice's picks with hers. */
function homeFor(url: string, init: RequestInit): Response {
  const signedIn = identityAnswer(url, init)
  if (signedIn) return signedIn
  if (url !== HOME_URL) throw new Error(`unexpected request: ${url}`)
  const auth = authorizationOf(init)
  if (auth === undefined) return homeStream(bestSellers)
  if (auth === `Bearer ${tokenOf('alice')}`) return homeStream(alicesPicks)
  throw new Error(`unexpected token: ${auth}`)
}

const picks = () => screen.getByTestId('home-picks')
const tileIds = () =>
  within(screen.getByTestId('home-grid'))
    .getAllByRole('article')
    .map((article) => article.getAttribute('data-testid'))

describe('Home', () => {
  signOutAfterEach()

  it('signed out, shows the categories and the best sellers, asked for without a token', async () => {
    const { calls } = mockFetch(homeFor)
    render(<Home />)
    expect(screen.getAllByRole('link', { name: /Browse/ })).toHaveLength(8) // the category cards
    expect(picks().getAttribute('data-status')).toBe('loading')
    expect(screen.getByTestId('home-picks-title').textContent).toBe('Best sellers')
    await waitFor(() => expect(picks().getAttribute('data-status')).toBe('done'))
    expect(calls.map((call) => call.url)).toEqual([HOME_URL])
    expect(authorizationOf(calls[0]!.init)).toBeUndefined()
    expect(picks().getAttribute('data-picks')).toBe('best_sellers')
    expect(tileIds()).toEqual(['tile-p-best-1', 'tile-p-best-2'])
    // Signed out, a tile's "Add to cart" asks to sign in first.
    expect(screen.getByTestId('sign-in-to-buy-p-best-1').textContent).toBe('Sign in to add to a cart')
    expect(screen.queryByTestId('add-to-cart-p-best-1')).toBeNull()
  })

  it("signed in, shows that user's recommendations, and asks again on signing out", async () => {
    const { calls } = mockFetch(homeFor)
    await signIn('alice')
    render(<Home />)
    await waitFor(() => expect(picks().getAttribute('data-picks')).toBe('personal'))
    expect(screen.getByTestId('home-picks-title').textContent).toBe('Recommended for you')
    expect(picks().textContent).toContain('Picked for Alice')
    expect(tileIds()).toEqual(['tile-p-alice-1', 'tile-p-alice-2', 'tile-p-alice-3'])
    const homeCalls = () => calls.filter((call) => call.url === HOME_URL)
    expect(homeCalls().map((call) => authorizationOf(call.init))).toEqual([`Bearer ${tokenOf('alice')}`])

    act(() => signOut())
    await waitFor(() => expect(picks().getAttribute('data-picks')).toBe('best_sellers'))
    expect(screen.getByTestId('home-picks-title').textContent).toBe('Best sellers')
    expect(tileIds()).toEqual(['tile-p-best-1', 'tile-p-best-2'])
    expect(homeCalls().map((call) => authorizationOf(call.init))).toEqual([`Bearer ${tokenOf('alice')}`, undefined])

    await act(async () => void (await signIn('alice')))
    await waitFor(() => expect(picks().getAttribute('data-picks')).toBe('personal'))
    expect(homeCalls()).toHaveLength(3)
  })

  it('shows no picks of the user before signing in while they load: the old answer is not kept', async () => {
    const body = new ControlledBody()
    mockFetch((url, init) => (authorizationOf(init) === undefined ? homeFor(url, init) : streamResponse(body.stream)))
    render(<Home />)
    await waitFor(() => expect(picks().getAttribute('data-picks')).toBe('best_sellers'))
    await act(async () => void (await signIn('alice')))
    // Alice's picks have not come yet: skeletons under her heading, not the best sellers.
    expect(picks().getAttribute('data-status')).toBe('loading')
    expect(screen.getByTestId('home-picks-title').textContent).toBe('Recommended for you')
    expect(screen.queryByTestId('home-grid')).toBeNull()
    await act(async () => {
      body.send(sseEvent('ready', { parts: ['recommendations', 'items'], view: alicesPicks }))
    })
    await waitFor(() => expect(tileIds()).toEqual(['tile-p-alice-1', 'tile-p-alice-2', 'tile-p-alice-3']))
  })

  it("says on the list, and on each tile, which products' price failed", async () => {
    const view: HomePage = { picks: 'best_sellers', items: [tile('p-1'), tile('p-2', { price: null, failed: ['pricing'] })] }
    const errors = [{ source: 'items.pricing', reason: 'timeout', items: ['p-2'], item_count: 1 }]
    mockFetch(() => homeStream(view, errors))
    render(<Home />)
    await waitFor(() => expect(picks().getAttribute('data-status')).toBe('done'))
    expect(screen.getByTestId('home-grid-notices').textContent).toContain('Price unavailable for 1 of these products')
    expect(screen.getByTestId('tile-notice-p-2-pricing').textContent).toBe('Price unavailable')
    expect(screen.queryByTestId('tile-notice-p-1-pricing')).toBeNull()
  })

  it('says when the items failed, and keeps the heading', async () => {
    const events =
      sseEvent('ready', { parts: ['recommendations'], view: { picks: 'best_sellers' } }) +
      sseEvent('failed', { source: 'items', reason: 'unavailable', view: { items: null } }) +
      sseEvent('done', { errors: [{ source: 'items', reason: 'unavailable' }], stale: [], timing: { total: 3 } })
    mockFetch(() => streamResponse(bodyOf([encode(events)])))
    render(<Home />)
    await waitFor(() => expect(screen.getByTestId('part-notice-items').getAttribute('data-reason')).toBe('unavailable'))
    expect(screen.getByTestId('home-picks-title').textContent).toBe('Best sellers')
  })

  it('shows the problem in the picks only (the categories stay) and offers to try again', async () => {
    let answers = 0
    mockFetch(() =>
      answers++ === 0
        ? problemResponse({ type: 'urn:bff:problem:upstream-error', title: 'Upstream error', status: 502, detail: 'critical part recommendations failed' })
        : homeStream(bestSellers),
    )
    render(<Home />)
    const error = await screen.findByTestId('error-state')
    expect(within(picks()).getByRole('heading', { level: 2, name: 'Upstream error (502)' })).toBe(error.querySelector('h2'))
    expect(screen.getAllByRole('link', { name: /Browse/ })).toHaveLength(8)
    act(() => screen.getByRole('button', { name: 'Try again' }).click())
    await waitFor(() => expect(tileIds()).toEqual(['tile-p-best-1', 'tile-p-best-2']))
  })

  it('drops a token the BFF refuses (401) and shows the best sellers', async () => {
    mockFetch((url, init) => {
      if (url === HOME_URL && authorizationOf(init) !== undefined) {
        return problemResponse({ type: 'urn:bff:problem:unauthorized', title: 'Unauthorized', status: 401, detail: 'the token has expired' })
      }
      return homeFor(url, init)
    })
    await signIn('alice')
    let session: ReturnType<typeof useSession> = null
    function Probe() {
      session = useSession()
      return null
    }
    render(
      <>
        <Probe />
        <Home />
      </>,
    )
    await waitFor(() => expect(picks().getAttribute('data-picks')).toBe('best_sellers'))
    expect(session).toBeNull()
    expect(tileIds()).toEqual(['tile-p-best-1', 'tile-p-best-2'])
  })
})
