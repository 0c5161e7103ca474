/** Views as web-bff sends them (typed by the generated schemas, so they stay in step). */
import type { CategoryPage, Inventory, Pricing, Product, ProductTile, Reviews } from '../api/types'

export const product: Product = {
  id: 'p-1001',
  name: 'Aurora Café Headphones', // not ASCII: a chunk may end inside "é"
  description: 'Closed-back headphones — plush ear cushions for long sessions.',
  category: 'audio',
  images: ['https://images.example.com/products/p-1001/front.jpg'],
  attributes: { brand: 'Aurora', weight_g: 254, noise_cancelling: true },
}

export const inventory: Inventory = {
  product_id: 'p-1001',
  in_stock: true,
  quantity: 64,
  warehouses: [
    { id: 'wh-berlin', qty: 40 },
    { id: 'wh-milan', qty: 24 },
  ],
}

export const pricing: Pricing = { product_id: 'p-1001', currency: 'EUR', amount: 24999, discount_pct: 15 }

export const reviews: Reviews = {
  product_id: 'p-1001',
  average: 4.6,
  count: 1284,
  top: [{ author: 'Zoë', stars: 5, text: 'Clear, balanced sound. Worth every €.' }],
}

export function tile(id: string, overrides: Partial<ProductTile> = {}): ProductTile {
  return {
    id,
    name: `Product ${id}`,
    image: null,
    price: { currency: 'EUR', amount: 4999, discount_pct: 0 },
    stock: { in_stock: true, quantity: 3 },
    rating: { average: 4.2, count: 17 },
    ...overrides,
  }
}

export const categoryPage: Required<Pick<CategoryPage, 'slug' | 'name' | 'total' | 'items'>> = {
  slug: 'audio',
  name: 'Audio',
  total: 2,
  items: [
    tile('p-1'),
    tile('p-2', { price: null, failed: ['pricing'] }),
  ],
}
