/**
 * The signed-in user's calls to web-bff: the cart (read and set a line), placing an order and
 * writing a review. Each answers its value or the problem (RFC 9457) to show, never throws.
 */
import { BFF_URL } from '../config'
import { CLIENT_PROBLEM, clientProblem, readProblem } from '../hooks/useAggregateStream'
import { currentSession, signOut } from './session'
import type { CartPage, Order, Problem, Review } from './types'

export type Answer<T> = { ok: true; status: number; value: T } | { ok: false; status: number; problem: Problem }

/** What `PUT /api/cart/items/{product_id}` takes. */
export interface CartLineBody {
  quantity: number
}

/** What `POST /api/products/{id}/reviews` takes. */
export interface ReviewBody {
  stars: number
  text: string
}

interface Call {
  method?: 'GET' | 'PUT' | 'POST'
  body?: unknown
  idempotencyKey?: string
}

async function call<T>(path: string, { method = 'GET', body, idempotencyKey }: Call = {}): Promise<Answer<T>> {
  const session = currentSession()
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (session) headers.Authorization = `Bearer ${session.token}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (idempotencyKey !== undefined) headers['Idempotency-Key'] = idempotencyKey
  let response: Response
  try {
    response = await fetch(`${BFF_URL}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch (error) {
    const problem = clientProblem(
      CLIENT_PROBLEM.network,
      'BFF unreachable',
      `No answer from ${BFF_URL}: ${String(error)}`,
    )
    return { ok: false, status: 0, problem }
  }
  if (!response.ok) {
    // A token the BFF no longer accepts (expired, or the provider restarted): sign in again.
    if (response.status === 401 && session) signOut()
    return { ok: false, status: response.status, problem: await readProblem(response) }
  }
  try {
    return { ok: true, status: response.status, value: (await response.json()) as T }
  } catch (error) {
    const problem = clientProblem(CLIENT_PROBLEM.invalid, 'Invalid answer', String(error))
    return { ok: false, status: response.status, problem }
  }
}

const segment = encodeURIComponent

export function getCart(): Promise<Answer<CartPage>> {
  return call<CartPage>('/api/aggregated/cart')
}

export function setCartLine(productId: string, quantity: number): Promise<Answer<CartPage>> {
  const body: CartLineBody = { quantity }
  return call<CartPage>(`/api/cart/items/${segment(productId)}`, { method: 'PUT', body })
}

export function placeOrder(idempotencyKey: string): Promise<Answer<Order>> {
  return call<Order>('/api/orders', { method: 'POST', body: {}, idempotencyKey })
}

export function writeReview(productId: string, review: ReviewBody, idempotencyKey: string): Promise<Answer<Review>> {
  return call<Review>(`/api/products/${segment(productId)}/reviews`, {
    method: 'POST',
    body: review,
    idempotencyKey,
  })
}
