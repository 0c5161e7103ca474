import { describe, expect, it } from 'vitest'
import { formatItems, formatTotal, itemCount, lineTotal } from './format'

describe('cart formatting', () => {
  it('prices a line with its discount, times its quantity', () => {
    expect(lineTotal({ amount: 24999, discount_pct: 15 }, 2)).toBe(42498)
    expect(lineTotal({ amount: 4999, discount_pct: 0 }, 3)).toBe(14997)
  })

  it('counts the items of every line', () => {
    expect(itemCount([{ quantity: 2 }, { quantity: 1 }])).toBe(3)
    expect(itemCount([])).toBe(0)
    expect(itemCount(undefined)).toBe(0)
  })

  it('says how many items and what they cost', () => {
    expect(formatItems(1)).toBe('1 item')
    expect(formatItems(1200)).toBe('1,200 items')
    expect(formatTotal({ amount: 42498, currency: 'EUR' })).toBe('€424.98')
    expect(formatTotal(null)).toBe('—')
  })
})
