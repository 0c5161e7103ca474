import { describe, expect, it } from 'vitest'
import { AttemptKeys, keepsKey } from './attempt'

function counter() {
  let n = 0
  return () => `key-${++n}`
}

describe('AttemptKeys', () => {
  it('keeps the key of an attempt across its retries', () => {
    const keys = new AttemptKeys(counter())
    expect(keys.keyFor({})).toBe('key-1')
    keys.settle(0) // the network failed: the retry is the same attempt
    expect(keys.keyFor({})).toBe('key-1')
    keys.settle(409) // the first request is still running
    expect(keys.keyFor({})).toBe('key-1')
    keys.settle(504) // outcome unknown: the key's record answers the retry
    expect(keys.keyFor({})).toBe('key-1')
  })

  it('a double click sends the same key', () => {
    const keys = new AttemptKeys(counter())
    const first = keys.keyFor({ cart: ['p-1:2'] })
    const second = keys.keyFor({ cart: ['p-1:2'] })
    expect(second).toBe(first)
  })

  it('starts a new attempt after a definite answer', () => {
    const keys = new AttemptKeys(counter())
    expect(keys.keyFor({})).toBe('key-1')
    keys.settle(201)
    expect(keys.openKey).toBeNull()
    expect(keys.keyFor({})).toBe('key-2')
    keys.settle(422)
    expect(keys.keyFor({})).toBe('key-3')
  })

  it('starts a new attempt when what it is about changes', () => {
    const keys = new AttemptKeys(counter())
    expect(keys.keyFor({ stars: 5, text: 'Great' })).toBe('key-1')
    keys.settle(0)
    expect(keys.keyFor({ stars: 4, text: 'Great' })).toBe('key-2')
  })

  it('makes random UUIDs by default', () => {
    const keys = new AttemptKeys()
    expect(keys.keyFor({})).toMatch(/^[0-9a-f-]{36}$/)
  })
})

describe('keepsKey', () => {
  it('is true while the outcome may still be a placed order', () => {
    expect([0, 409, 500, 502, 504].map(keepsKey)).toEqual([true, true, true, true, true])
    expect([200, 201, 400, 401, 404, 422].map(keepsKey)).toEqual([false, false, false, false, false, false])
  })
})
