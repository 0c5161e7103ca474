import { describe, expect, it } from 'vitest'
import { attributeLabel, attributeValue, formatAge, formatPrice, salePrice, stars } from './format'

describe('format', () => {
  it('reads amounts in minor units, with the currency’s own decimals', () => {
    expect(formatPrice(24999, 'EUR')).toBe('€249.99')
    expect(formatPrice(1500, 'JPY')).toBe('JP¥1,500')
    expect(formatPrice(100, 'XXX-not-a-currency')).toBe('€1.00')
  })

  it('takes the discount off the amount, to the minor unit', () => {
    expect(salePrice(24999, 15)).toBe(21249)
    expect(salePrice(4999, 0)).toBe(4999)
  })

  it('labels attributes and their values', () => {
    expect(attributeLabel('weight_g')).toBe('Weight (g)')
    expect(attributeLabel('refresh_hz')).toBe('Refresh (Hz)')
    expect(attributeLabel('battery_hours')).toBe('Battery hours')
    expect(attributeValue(true)).toBe('Yes')
    expect(attributeValue(['a', 2])).toBe('a, 2')
  })

  it('says ages and ratings as a person would', () => {
    expect(formatAge(12.3)).toBe('12 s')
    expect(formatAge(600)).toBe('10 min')
    expect(stars(4.6)).toBe('★★★★★')
    expect(stars(3.2)).toBe('★★★☆☆')
  })
})
