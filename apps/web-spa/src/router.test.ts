import { describe, expect, it } from 'vitest'
import { href, parseRoute } from './router'

describe('parseRoute', () => {
  it.each([
    ['', { name: 'home' }],
    ['#/', { name: 'home' }],
    ['#/category/audio', { name: 'category', slug: 'audio', page: 1 }],
    ['#/category/audio?page=3', { name: 'category', slug: 'audio', page: 3 }],
    ['#/category/audio?page=-1', { name: 'category', slug: 'audio', page: 1 }],
    ['#/product/p-1001', { name: 'product', id: 'p-1001' }],
    ['#/product/a%2Fb', { name: 'product', id: 'a/b' }],
    ['#/product/%E0%A4%A', { name: 'not-found', path: '/product/%E0%A4%A' }],
    ['#/product/p-1/extra', { name: 'not-found', path: '/product/p-1/extra' }],
    ['#/basket', { name: 'not-found', path: '/basket' }],
    ['#/cart', { name: 'cart' }],
    ['#/cart/x', { name: 'not-found', path: '/cart/x' }],
    ['#/order/o-17', { name: 'order', id: 'o-17' }],
  ])('%s', (hash, route) => {
    expect(parseRoute(hash)).toEqual(route)
  })

  it('reads back the links it makes', () => {
    expect(parseRoute(href.product('a/b c'))).toEqual({ name: 'product', id: 'a/b c' })
    expect(parseRoute(href.category('audio', 2))).toEqual({ name: 'category', slug: 'audio', page: 2 })
    expect(parseRoute(href.cart())).toEqual({ name: 'cart' })
    expect(parseRoute(href.order('o/1'))).toEqual({ name: 'order', id: 'o/1' })
  })
})
