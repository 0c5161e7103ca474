import { BFF_URL } from '../config'
import type { CategoryQuery, HomeQuery, ProductPart, ProductQuery } from './types'

/** What the product page shows: the default parts and the related products (streamed last). */
export const PRODUCT_PAGE_PARTS: readonly ProductPart[] = [
  'product',
  'inventory',
  'pricing',
  'reviews',
  'related',
]

export const CATEGORY_PAGE_SIZE = 24

/** How many picks (recommendations, or best sellers) the home page shows. */
export const HOME_PICKS = 12

function url(path: string, query: Record<string, string | number | readonly string[] | undefined>) {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue
    params.set(name, Array.isArray(value) ? value.join(',') : String(value))
  }
  return `${BFF_URL}${path}?${params}`
}

export function productUrl(id: string, fields: ProductQuery['fields'] = [...PRODUCT_PAGE_PARTS]) {
  const query: ProductQuery = { id, fields }
  return url('/api/aggregated/product', query)
}

export function categoryUrl(slug: string, offset = 0, limit = CATEGORY_PAGE_SIZE) {
  const query: CategoryQuery = { slug, limit, offset }
  return url('/api/aggregated/category', query)
}

/** The home page's picks: the signed-in user's recommendations, or the best sellers. */
export function homeUrl(limit = HOME_PICKS) {
  const query: HomeQuery = { limit }
  return url('/api/aggregated/home', query)
}
