/**
 * A small hash router: `#/`, `#/category/<slug>[?page=N]`, `#/product/<id>`, `#/cart`,
 * `#/order/<id>` (an order's confirmation). The hash keeps
 * the SPA a set of static files that any server (or none: file://) can serve.
 */
import { useSyncExternalStore } from 'react'

export type Route =
  | { name: 'home' }
  | { name: 'category'; slug: string; page: number }
  | { name: 'product'; id: string }
  | { name: 'cart' }
  | { name: 'order'; id: string }
  | { name: 'not-found'; path: string }

function decode(segment: string): string | null {
  try {
    return decodeURIComponent(segment)
  } catch {
    return null
  }
}

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/'
  const [pathname = '/', search = ''] = path.split('?', 2)
  const segments = pathname.split('/').filter(Boolean)
  if (segments.length === 0) return { name: 'home' }
  if (segments.length === 1 && segments[0] === 'cart') return { name: 'cart' }
  const [kind, raw, ...rest] = segments
  const value = raw === undefined || rest.length ? null : decode(raw)
  if (value) {
    if (kind === 'category') {
      const page = Number(new URLSearchParams(search).get('page') ?? '1')
      return { name: 'category', slug: value, page: Number.isInteger(page) && page > 0 ? page : 1 }
    }
    if (kind === 'product') return { name: 'product', id: value }
    if (kind === 'order') return { name: 'order', id: value }
  }
  return { name: 'not-found', path }
}

export const href = {
  home: () => '#/',
  category: (slug: string, page = 1) =>
    `#/category/${encodeURIComponent(slug)}${page > 1 ? `?page=${page}` : ''}`,
  product: (id: string) => `#/product/${encodeURIComponent(id)}`,
  cart: () => '#/cart',
  order: (id: string) => `#/order/${encodeURIComponent(id)}`,
}

function subscribe(onChange: () => void) {
  window.addEventListener('hashchange', onChange)
  return () => window.removeEventListener('hashchange', onChange)
}

const currentHash = () => window.location.hash

/** The route of the current location, updated on every hash change. */
export function useHashRoute(): Route {
  const hash = useSyncExternalStore(subscribe, currentHash, () => '')
  return parseRoute(hash)
}
